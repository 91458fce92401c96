"""Which units (examples or packed rows) each process trains on at each optimizer step.

A plan is a pure function of (seed, step): resuming at step k rebuilds exactly the batches an
uninterrupted run would have seen, with no iterator state to save. The global batch of a step is
micro_batch_size x grad_accum_steps x world_size units; process r takes the r-th slice of it, so
the same global batch gives the same loss whatever the number of processes.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from posttrain.errors import UserError

MicroBatch = dict[str, torch.Tensor]
Collate = Callable[[list[Any]], MicroBatch]


@dataclass(frozen=True)
class Layout:
    micro_batch_size: int
    grad_accum_steps: int
    world_size: int = 1
    rank: int = 0

    @property
    def global_batch(self) -> int:
        return self.micro_batch_size * self.grad_accum_steps * self.world_size

    def local_micro_batches(self, step_units: Sequence[Any]) -> list[list[Any]]:
        """This process's slice of a step's units, cut into grad_accum_steps micro-batches."""
        per_rank = self.micro_batch_size * self.grad_accum_steps
        mine = step_units[self.rank * per_rank : (self.rank + 1) * per_rank]
        mb = self.micro_batch_size
        return [list(mine[i : i + mb]) for i in range(0, len(mine), mb)]


class EpochPlan:
    """Epochs over a fixed list of units, reshuffled each epoch by a seed-derived permutation.
    The last incomplete global batch of an epoch is dropped so every step has the same size."""

    def __init__(
        self,
        units: Sequence[Any],
        collate: Collate,
        layout: Layout,
        seed: int,
        max_steps: int | None,
        epochs: float,
        lengths: Sequence[int] | None = None,
    ):
        self.units, self.collate, self.layout, self.seed = units, collate, layout, seed
        self.lengths = lengths  # given: group similar lengths into the same micro-batches
        self.steps_per_epoch = len(units) // layout.global_batch
        if self.steps_per_epoch == 0:
            raise UserError(
                f"the training data has {len(units)} examples, fewer than one global batch "
                f"({layout.global_batch} = micro_batch_size x grad_accum_steps x processes)"
            )
        self.total_steps = max_steps or max(1, math.ceil(epochs * self.steps_per_epoch))

    def _order(self, epoch: int) -> list[int]:
        rng = random.Random(f"{self.seed}/epoch/{epoch}")
        order = list(range(len(self.units)))
        rng.shuffle(order)
        if self.lengths is not None:
            order = group_by_length(order, self.lengths, self.layout, rng)
        return order

    def steps(self, start: int = 0) -> Iterator[list[MicroBatch]]:
        G, order, epoch = self.layout.global_batch, None, -1
        for step in range(start, self.total_steps):
            if step // self.steps_per_epoch != epoch:
                epoch = step // self.steps_per_epoch
                order = self._order(epoch)
            i = step % self.steps_per_epoch
            step_units = [self.units[j] for j in order[i * G : (i + 1) * G]]
            yield [self.collate(mb) for mb in self.layout.local_micro_batches(step_units)]


def group_by_length(
    order: list[int], lengths: Sequence[int], layout: Layout, rng: random.Random, megabatch: int = 64
) -> list[int]:
    """Length-grouped order: within each window of `megabatch` global batches of the shuffled order,
    sort by length and cut micro-batches of neighbours, so a micro-batch pads little; then shuffle
    the global batches so long and short ones alternate over the epoch. Each step keeps its fixed
    size and the order stays a pure function of (seed, epoch)."""
    G, mb = layout.global_batch, layout.micro_batch_size
    window = G * megabatch
    batches: list[list[int]] = []
    for start in range(0, len(order) - len(order) % G, window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i], reverse=True)
        micro = [chunk[i : i + mb] for i in range(0, len(chunk), mb)]
        per_step = G // mb
        steps = [sum(micro[i : i + per_step], []) for i in range(0, len(micro), per_step)]
        batches += [s for s in steps if len(s) == G]
    rng.shuffle(batches)
    used = {i for b in batches for i in b}
    return [i for b in batches for i in b] + [i for i in order if i not in used]


class StreamPlan:
    """An endless, deterministic stream of units (pre-training rows), G units per step."""

    def __init__(self, make_stream: Callable[[], Iterator[Any]], collate: Collate, layout: Layout, total_steps: int):
        self.make_stream, self.collate, self.layout = make_stream, collate, layout
        self.total_steps = total_steps

    def steps(self, start: int = 0) -> Iterator[list[MicroBatch]]:
        G = self.layout.global_batch
        stream = itertools.islice(self.make_stream(), start * G, None)  # replay to the resume point
        for _ in range(start, self.total_steps):
            step_units = list(itertools.islice(stream, G))
            yield [self.collate(mb) for mb in self.layout.local_micro_batches(step_units)]


def eval_micro_batches(units: Sequence[Any], collate: Collate, layout: Layout) -> list[MicroBatch]:
    """Held-out units split across processes (round robin), in micro-batches."""
    mine = list(units[layout.rank :: layout.world_size])
    mb = layout.micro_batch_size
    return [collate(mine[i : i + mb]) for i in range(0, len(mine), mb)]
