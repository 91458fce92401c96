"""Divergence checks for the training loop: a run that has blown up stops (or skips the bad step)
with one line naming the step, and never saves non-finite weights.

What a blow-up looks like on the tiny model (measured, SFT, AdamW):
- lr 1e20: step 1 moves every weight by ~1e20 (still finite); the loss of step 2 is NaN.
- lr 1e3: after two steps of ~1e3 per weight the residual stream reaches ~1e20-1e38; RMSNorm's
  mean of squares overflows to inf, its rsqrt is 0 and it outputs exact zeros, so the logits are
  uniform (loss = ln(vocab)) and the gradient norm is exactly 0 from then on while the loss stays
  finite. The weights themselves stay finite, so that case is caught as "gradient exactly 0 while
  the loss is not 0", which a working network never shows (a GRPO batch with all-zero advantages
  has loss 0 as well as gradient 0, and is not flagged).
- an lr large enough to push a weight past the float range makes the weights themselves
  non-finite; they are checked after every optimizer step, before any save.

Cost: one host sync per step reading a few flags (the loss and gradient norm are already reduced
over processes), and one fused max-abs reduction over the trainable weights per step.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable

import torch

from posttrain.errors import UserError

log = logging.getLogger(__name__)

# Skipping helps with a rare bad batch; when every step is bad the weights themselves are gone.
MAX_SKIPS_IN_A_ROW = 10
_HINT = "lower train.lr (or set train.on_nonfinite: skip to step over rare bad batches)"


class DivergenceGuard:
    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        mode: str,
        reduce_sum: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        self.params = [_local(p) for p in params if p.requires_grad]
        self.mode = mode  # "stop" | "skip"
        self.reduce_sum = reduce_sum  # across processes (sharded weights differ by rank)
        self.skips_in_a_row = 0
        self._weights_bad: torch.Tensor | None = None  # pending flag of the last update
        self._weights_step = 0

    def allow_update(self, step: int, loss: torch.Tensor, grad_norm: torch.Tensor | None) -> bool:
        """Before optimizer step `step` (1-based): True to apply it, False to skip it (mode skip).
        Raises UserError naming the step when the run has diverged."""
        no = torch.zeros((), dtype=torch.bool, device=loss.device)
        flags = [~torch.isfinite(loss), no, no, no if self._weights_bad is None else self._weights_bad]
        if grad_norm is not None:  # None: DeepSpeed clips inside its engine and does not report it
            flags[1:3] = [~torch.isfinite(grad_norm), (grad_norm == 0) & (loss != 0)]
        loss_bad, grad_bad, dead, weights_bad = torch.stack([f.to(loss.device) for f in flags]).tolist()
        if weights_bad:  # the previous update broke the weights: nothing to skip back to
            self._raise_weights()
        self._weights_bad = None
        if not (loss_bad or grad_bad or dead):
            self.skips_in_a_row = 0
            return True
        problem = _describe(float(loss), None if grad_norm is None else float(grad_norm))
        if self.mode != "skip":
            raise UserError(f"step {step}: {problem}: training diverged; nothing from this step was saved; {_HINT}")
        self.skips_in_a_row += 1
        if self.skips_in_a_row >= MAX_SKIPS_IN_A_ROW:
            raise UserError(
                f"step {step}: {problem} for {self.skips_in_a_row} steps in a row "
                f"(train.on_nonfinite: skip): training diverged; lower train.lr"
            )
        log.warning("step %d: %s: update skipped (train.on_nonfinite: skip)", step, problem)
        return False

    def after_update(self, step: int) -> None:
        """Queue the check of the weights that optimizer step `step` produced (read lazily)."""
        # Fused max |w| per tensor (torch's own clip_grad_norm_ uses the same kernel); weights
        # spread over several devices are gathered on the first one's.
        norms = torch._foreach_norm(self.params, ord=math.inf)
        device = self.params[0].device
        bad = ~torch.isfinite(torch.stack([n.float().to(device) for n in norms]).max())
        if self.reduce_sum is not None:
            bad = self.reduce_sum(bad.float()) > 0
        self._weights_bad, self._weights_step = bad, step

    def check_weights(self) -> None:
        """Before saving: raise if the last update made any weight non-finite."""
        if self._weights_bad is not None and bool(self._weights_bad):
            self._raise_weights()

    def _raise_weights(self) -> None:
        raise UserError(
            f"step {self._weights_step}: the update made some weights non-finite "
            f"(inf/NaN): training diverged; nothing from this step was saved; {_HINT}"
        )


def _describe(loss: float, grad_norm: float | None) -> str:
    if not math.isfinite(loss):
        return f"the loss is {loss}"
    if grad_norm is not None and not math.isfinite(grad_norm):
        return f"the gradient norm is {grad_norm} (loss {loss:.4g})"
    return (
        f"the gradient norm is exactly 0 while the loss is {loss:.4g} "
        "(activations overflowed: the network no longer learns)"
    )


def _local(param: torch.Tensor) -> torch.Tensor:
    """A sharded (DTensor) weight's local shard; plain tensors as they are."""
    return param.to_local() if hasattr(param, "to_local") else param
