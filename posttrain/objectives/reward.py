"""Reward-model objectives as pure functions of the model's scalar (or per-attribute) scores.

Pairwise objectives take `ScorePairs` (r_w = r(x, y_w), r_l = r(x, y_l), shape [B] each) and the
attribute regression takes `AttributeScores` ([B, A]). Every objective returns PER-EXAMPLE losses
[B], never a mean: the training loop sums them and divides by the number of units of the whole
optimizer step (pairs; for regression, annotated attribute scores, see `regression`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from posttrain.errors import UserError


@dataclass(frozen=True, kw_only=True, slots=True)
class ScorePairs:
    """Reward-model scores of the chosen and rejected responses, [B] each; `margins` (bt_margin)
    and `strengths` (scaled_bt) are per-pair annotations, read only by the objective that needs them."""

    chosen_scores: Tensor
    rejected_scores: Tensor
    margins: Tensor | None = None
    strengths: Tensor | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class AttributeScores:
    """Per-attribute predictions and targets [B, A] (HelpSteer2: helpfulness, correctness,
    coherence, complexity, verbosity, each 0-4); mask [B, A] is 1 where the target is annotated."""

    predicted: Tensor
    target: Tensor
    mask: Tensor | None = None


@dataclass(frozen=True, slots=True)
class RewardOutput:
    """losses [B] (with grad) and detached per-example statistics [B] (the loop sums them)."""

    losses: Tensor
    extra: dict[str, Tensor] = field(default_factory=dict)


def _need(value: Tensor | None, name: str, loss: str) -> Tensor:
    if value is None:
        raise UserError(f"reward loss '{loss}' needs '{name}', which the batch does not carry")
    return value


def _pairwise_output(losses: Tensor, batch: ScorePairs) -> RewardOutput:
    """Per-pair statistics: margin r_w - r_l and accuracy [r_w > r_l] (RewardBench's measure)."""
    margin = (batch.chosen_scores - batch.rejected_scores).detach()
    return RewardOutput(losses, {"margin": margin, "accuracy": (margin > 0).to(margin.dtype)})


def bradley_terry(batch: ScorePairs) -> RewardOutput:
    """Bradley-Terry pairwise loss (Bradley & Terry 1952; as an RM loss, Ouyang et al. 2022,
    "Training language models to follow instructions with human feedback"):
    loss = -log sigma(r_w - r_l)."""
    losses = -F.logsigmoid(batch.chosen_scores - batch.rejected_scores)
    return _pairwise_output(losses, batch)


def bt_margin(batch: ScorePairs) -> RewardOutput:
    """Bradley-Terry with a per-pair margin m (Touvron et al. 2023, "Llama 2: Open Foundation and
    Fine-Tuned Chat Models"; m grows with the annotated preference strength):
    loss = -log sigma(r_w - r_l - m)."""
    margins = _need(batch.margins, "margins", "bt_margin")
    losses = -F.logsigmoid(batch.chosen_scores - batch.rejected_scores - margins)
    return _pairwise_output(losses, batch)


def scaled_bt(batch: ScorePairs) -> RewardOutput:
    """Scaled Bradley-Terry (Wang et al. 2024, "HelpSteer2-Preference: Complementing Ratings with
    Preferences"): each pair weighted by its annotated preference strength m in {1, 2, 3}:
    loss = -m * log sigma(r_w - r_l)."""
    strengths = _need(batch.strengths, "strengths", "scaled_bt")
    losses = -strengths * F.logsigmoid(batch.chosen_scores - batch.rejected_scores)
    return _pairwise_output(losses, batch)


def regression(batch: AttributeScores) -> RewardOutput:
    """Per-attribute regression, SteerLM style (Dong et al. 2023, "SteerLM: Attribute Conditioned
    SFT as an (User-Steerable) Alternative to RLHF"; Wang et al. 2024, "HelpSteer2: Open-source
    dataset for training top-performing reward models"): squared error on each annotated attribute,
    loss_i = sum_a mask_ia * (pred_ia - target_ia)^2.
    The loss is a per-example SUM and extra['annotated'] counts its annotated attributes, so the
    loop's unit is one annotated score: sum of losses / sum of counts is the exact masked MSE of
    the whole step, whatever the mix of missing attributes per micro-batch. Masked targets may hold
    anything (NaN included): they are selected out, not multiplied by 0."""
    annotated = batch.mask.bool() if batch.mask is not None else torch.ones_like(batch.target, dtype=torch.bool)
    error = torch.where(annotated, batch.predicted - batch.target, 0.0)
    extra = {"annotated": annotated.to(error.dtype).sum(dim=-1), "absolute_error": error.abs().sum(dim=-1)}
    return RewardOutput((error**2).sum(dim=-1), {k: v.detach() for k, v in extra.items()})
