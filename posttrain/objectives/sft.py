"""Next-token negative log-likelihood, the objective of pre-training and supervised fine-tuning."""

from __future__ import annotations

import torch


def nll_sum(token_logps: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """Sum over loss tokens of -log p(token). The training loop divides by the number of loss
    tokens of the whole optimizer step (all micro-batches, all processes): token-level
    normalisation, so gradient accumulation gives the same loss and gradients as one big batch.
    A per-micro-batch mean would over-weight the tokens of short micro-batches."""
    return -(token_logps * loss_mask).sum()


def loss_mask(labels: torch.Tensor) -> torch.Tensor:
    """1.0 where a label is predicted (not IGNORE and not position 0, which nothing predicts)."""
    mask = labels != -100
    mask[:, 0] = False
    return mask.float()


class NextTokenObjective:
    """Wires the policy's token log-probs to nll_sum for the training loop (pre-training, SFT).
    The loss unit is a predicted token."""

    def weight(self, mb: dict[str, torch.Tensor]) -> int:
        return int((mb["labels"][:, 1:] != -100).sum())

    def loss(self, policy, mb: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        # The loss is a scaled sum of these log-probs, so the head may form its gradient early.
        logps = policy(mb["input_ids"], mb["labels"], position_ids=mb.get("position_ids"), summed=True)
        return nll_sum(logps, loss_mask(mb["labels"])), {}
