"""Which cache units an eviction policy keeps: pure functions on per-unit scores and positions.

A cache unit is one token's key and value in one KV head of one layer. Every method below keeps
`budget` units per KV head: the protected units (attention sinks at the start, and the most recent
units) plus the highest-scoring others.

- StreamingLLM (Xiao et al. 2023, "Efficient Streaming Language Models with Attention Sinks"):
  keep the first `sinks` tokens and the last `window` tokens, nothing else (budget = sinks+window).
- H2O (Zhang et al. 2023, "H2O: Heavy-Hitter Oracle"): a unit's score is the attention it has
  received so far, summed over every query that saw it (and over the query heads that share its
  KV head under GQA): s_j = sum_i A_ij. Keep the `recent` newest units plus the top-scoring rest.
- Locret (Huang et al. 2024, "Locret: Accelerating Long-Context LLM Inference with Retaining
  Heads"): the score is a retaining head's predicted causal importance, computed once when the
  unit enters the cache (locret.py); the `recent` newest units are the paper's "stabilizers".
- random: uniform random scores with the same protected units, the control Locret must beat.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

METHODS = ("full", "streaming", "h2o", "locret", "random")


@dataclass(frozen=True)
class Policy:
    """An eviction method and its sizes; budget None (method "full") never evicts."""

    method: str
    budget: int | None = None
    sinks: int = 0  # leading tokens always kept (StreamingLLM's attention sinks)
    recent: int = 0  # newest tokens always kept (window / H2O recent / Locret stabilizers)
    seed: int = 0  # method "random" only

    @property
    def needs_attention(self) -> bool:
        return self.method == "h2o"


def check_policy(policy: Policy, context: int) -> None:
    """A budget that cannot hold the protected units, or one at least the whole context (nothing
    would ever be evicted, so the comparison would be meaningless), is a UserError."""
    from posttrain.errors import UserError

    if policy.method not in METHODS:
        raise UserError(f"--method {policy.method!r}: choose one of {', '.join(METHODS)}")
    if policy.method == "full":
        return
    if policy.budget is None or policy.budget < 1:
        raise UserError(f"--budget: method {policy.method} needs a budget >= 1 cache units per head")
    if min(policy.sinks, policy.recent) < 0:
        raise UserError("--sinks/--recent must be >= 0")
    protected = policy.sinks + policy.recent
    if policy.budget < protected:
        raise UserError(f"--budget {policy.budget} is smaller than sinks + recent = {protected}")
    if policy.method == "streaming" and policy.budget != protected:
        raise UserError(
            f"--budget {policy.budget}: StreamingLLM keeps exactly sinks + window "
            f"= {protected}; set --recent {policy.budget - policy.sinks}"
        )
    if policy.budget >= context:
        raise UserError(
            f"--budget {policy.budget} is not smaller than the context ({context} tokens): nothing would be evicted"
        )


def protected_mask(positions: torch.Tensor, sinks: int, recent: int) -> torch.Tensor:
    """True for units that are attention sinks (absolute position < sinks) or among the `recent`
    newest units (largest positions) of each row. positions: [..., T] absolute token positions."""
    keep = positions < sinks
    if recent > 0:
        newest = positions.topk(min(recent, positions.shape[-1]), dim=-1).indices
        keep = keep.scatter(-1, newest, True)
    return keep


def select_units(scores: torch.Tensor, positions: torch.Tensor, budget: int, sinks: int, recent: int) -> torch.Tensor:
    """Indices (in cache order) of the `budget` units kept per row: all protected units, then the
    highest scores. scores, positions: [B, H, T] -> long [B, H, budget], ascending."""
    if scores.shape[-1] <= budget:
        return torch.arange(scores.shape[-1]).expand(scores.shape).to(scores.device)
    ranked = scores.float().masked_fill(protected_mask(positions, sinks, recent), float("inf"))
    return ranked.topk(budget, dim=-1).indices.sort(dim=-1).values


def accumulate_attention(previous: torch.Tensor, weights: torch.Tensor, kv_heads: int) -> torch.Tensor:
    """H2O's accumulated attention after one more chunk of queries.

    previous: [B, kv_heads, T_old] scores of the cached units; weights: [B, heads, C, T_old + C]
    softmax attention of the chunk's C queries over the cached units then the chunk itself.
    Returns [B, kv_heads, T_old + C]: s_j + sum over the chunk's queries i and over the query heads
    of the unit's KV group of A_ij (new units start from 0)."""
    b, heads, c, total = weights.shape
    received = weights.float().reshape(b, kv_heads, heads // kv_heads, c, total).sum(dim=(2, 3))
    grown = torch.cat([previous.float(), received.new_zeros(b, kv_heads, total - previous.shape[-1])], dim=-1)
    return grown + received


def new_unit_scores(policy: Policy, shape: tuple[int, int, int], generator: torch.Generator | None) -> torch.Tensor:
    """Scores of fresh units for the methods whose score does not depend on the model."""
    if policy.method == "random":
        return torch.rand(shape, generator=generator)
    return torch.zeros(shape)  # streaming: protection alone decides; full: never evicts
