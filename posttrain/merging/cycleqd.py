"""CycleQD (Kuroki et al. 2024, "Agent skill acquisition for large language models via CycleQD"):
quality-diversity search over merges of per-task experts of one base model.

- Every model is a task vector tau = theta - base (experts: their fine-tunes' deltas).
- One MAP-Elites archive per task k. In archive k the quality is the score on task k and the
  behaviour descriptors are the scores on the other tasks, each binned into `bins` cells over
  [0, 1]; a cell keeps its best model.
- Generation g uses archive k = g mod K (the cyclic switch of which task is the quality): two
  parents drawn from it (uniformly; the paper weights by quality), crossover, mutation, then the
  child is scored on every task and offered to every archive.
- Crossover (model merging): child = w_1 tau_1 + w_2 tau_2, one w_i ~ N(mu, sigma) per parent.
- Mutation (SVD-based): each 2-D tensor of the child's task vector, tau = U S V^T, becomes
  U diag(S * (1 + eps)) V^T with eps ~ N(0, sigma) per singular value; other tensors unchanged.
The paper's elite-sampling temperature and its per-layer merging ratios are left out here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

StateDict = dict[str, torch.Tensor]


def crossover(
    first: StateDict, second: StateDict, generator: torch.Generator, mu: float = 0.5, sigma: float = 0.1
) -> StateDict:
    """w_1 tau_1 + w_2 tau_2 with one weight per parent drawn from N(mu, sigma)."""
    w1, w2 = (mu + sigma * torch.randn(2, generator=generator)).tolist()
    return {k: w1 * first[k] + w2 * second[k] for k in first}


def svd_mutation(tau: StateDict, generator: torch.Generator, sigma: float = 0.1) -> StateDict:
    """Perturb the singular values of every 2-D tensor: U diag(S (1 + eps)) V^T."""
    out = {}
    for k, t in tau.items():
        if t.dim() != 2 or sigma == 0:
            out[k] = t
            continue
        u, s, vh = torch.linalg.svd(t.float(), full_matrices=False)
        eps = sigma * torch.randn(s.shape, generator=generator)
        out[k] = ((u * (s * (1 + eps))) @ vh).to(t.dtype)
    return out


@dataclass
class Elite:
    tau: StateDict
    scores: list[float]
    name: str


@dataclass
class Archive:
    """MAP-Elites grid for quality task `task`: cell (binned scores of the other tasks) -> elite."""

    task: int
    bins: int
    cells: dict[tuple[int, ...], Elite] = field(default_factory=dict)

    def cell(self, scores: Sequence[float]) -> tuple[int, ...]:
        return tuple(min(int(s * self.bins), self.bins - 1) for j, s in enumerate(scores) if j != self.task)

    def offer(self, elite: Elite) -> bool:
        """Keep `elite` when its cell is empty or it beats the cell's quality; True when kept."""
        key = self.cell(elite.scores)
        held = self.cells.get(key)
        if held is None or elite.scores[self.task] > held.scores[self.task]:
            self.cells[key] = elite
            return True
        return False

    def best(self) -> Elite:
        return max(self.cells.values(), key=lambda e: e.scores[self.task])


def run_cycleqd(
    experts: Sequence[StateDict],
    evaluate: Callable[[StateDict], list[float]],
    generations: int,
    bins: int = 4,
    seed: int = 0,
    mu: float = 0.5,
    sigma_crossover: float = 0.1,
    sigma_mutation: float = 0.1,
) -> list[Archive]:
    """Archives after `generations` children. experts are task vectors; evaluate(tau) returns one
    score in [0, 1] per task (the caller adds the base and runs the tasks)."""
    n_tasks = len(experts)
    archives = [Archive(k, bins) for k in range(n_tasks)]
    for i, tau in enumerate(experts):
        elite = Elite(tau, evaluate(tau), f"expert-{i}")
        for archive in archives:
            archive.offer(elite)
    generator = torch.Generator().manual_seed(seed)
    for g in range(generations):
        pool = list(archives[g % n_tasks].cells.values())
        picks = torch.randint(len(pool), (2,), generator=generator).tolist()
        child = crossover(pool[picks[0]].tau, pool[picks[1]].tau, generator, mu, sigma_crossover)
        child = svd_mutation(child, generator, sigma_mutation)
        elite = Elite(child, evaluate(child), f"child-{g}")
        for archive in archives:
            archive.offer(elite)
    return archives
