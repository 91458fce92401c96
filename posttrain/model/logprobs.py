"""Per-token log-probs of the labels, without ever building full-vocabulary logits for the batch.

The decoder runs once; the LM head is applied only at positions that carry a loss, a chunk of
positions at a time, with log-softmax and gather inside the chunk (model/fused_head.py for a plain
linear head: gradients formed in forward for summed NLL, the chunk rebuilt in backward otherwise;
activation checkpointing around log_softmax for any other head). Peak memory for the head is
chunk_size x vocab, not batch x length x vocab: with Llama-3's 128K vocabulary that is what decides
whether a batch fits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from posttrain.data.batching import IGNORE
from posttrain.data.shared_prefix import SEGMENTS_PER_PAIR
from posttrain.model.fused_head import (
    RecomputedLogprobHead,
    SummedLogprobHead,
    can_fuse,
    chunk_logprobs,
)
from posttrain.model.router_loss import RouterAux, router_aux_for
from posttrain.model.segment_mask import segment_attention_mask


def _chunk_logprobs(
    head: nn.Module, hidden: torch.Tensor, targets: torch.Tensor, softcap: float | None
) -> torch.Tensor:
    logits = head(hidden).float()
    if softcap:  # Gemma-2 style final-logit soft-capping, as the model's own forward applies it
        logits = torch.tanh(logits / softcap) * softcap
    return -F.cross_entropy(logits, targets, reduction="none")


def selected_logprobs(
    head: nn.Module, hidden: torch.Tensor, targets: torch.Tensor, chunk_size: int = 256, softcap: float | None = None
) -> torch.Tensor:
    """log p(targets[i] | hidden[i]) for rows of `hidden` [N, H], chunk by chunk."""
    pieces = []
    for start in range(0, hidden.shape[0], chunk_size):
        h, t = hidden[start : start + chunk_size], targets[start : start + chunk_size]
        if torch.is_grad_enabled() and h.requires_grad:
            pieces.append(checkpoint(_chunk_logprobs, head, h, t, softcap, use_reentrant=False))
        else:
            pieces.append(_chunk_logprobs(head, h, t, softcap))
    return torch.cat(pieces) if pieces else hidden.new_zeros(0, dtype=torch.float32)


def token_logprobs(
    model: nn.Module,
    input_ids: torch.Tensor,
    labels: torch.Tensor,
    position_ids: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    chunk_size: int = 256,
    summed: bool = False,
    segment_ids: torch.Tensor | None = None,
    per_unit: int = SEGMENTS_PER_PAIR,
) -> torch.Tensor:
    """[B, T] float32: at t, log p(labels[t] | tokens < t); 0 where labels[t] is IGNORE or t = 0.
    summed=True promises that the caller's loss is a scaled sum of these log-probs (NLL), which
    lets the head compute its gradient in the forward pass (model/fused_head.py). segment_ids
    (the shared-prefix layout, data/shared_prefix.py, per_unit segments a unit) replace
    attention_mask by their 4D mask."""
    return logprobs_and_router_aux(
        model,
        input_ids,
        labels,
        position_ids,
        attention_mask,
        chunk_size,
        summed,
        segment_ids=segment_ids,
        per_unit=per_unit,
    )[0]


def logprobs_and_router_aux(
    model: nn.Module,
    input_ids,
    labels,
    position_ids=None,
    attention_mask=None,
    chunk_size: int = 256,
    summed: bool = False,
    router: RouterAux | None = None,
    segment_ids: torch.Tensor | None = None,
    per_unit: int = SEGMENTS_PER_PAIR,
):
    """token_logprobs plus, for an MoE with `router`, its weighted load-balancing loss (else None)."""
    if segment_ids is not None:
        attention_mask = segment_attention_mask(segment_ids, model.dtype, per_unit)
    hidden, targets, keep, aux = _decode(model, input_ids, labels, position_ids, attention_mask, router)
    return _logprobs_at(model, hidden, targets, keep, chunk_size, summed), aux


def logprobs_from_hidden(
    model: nn.Module, last_hidden: torch.Tensor, labels: torch.Tensor, chunk_size: int = 256, summed: bool = False
) -> torch.Tensor:
    """token_logprobs from the decoder's last hidden states [B, T, H] (a caller that needs them for
    something else too, e.g. PPO's value head on the policy, runs the decoder once)."""
    targets = labels[:, 1:]
    keep = targets != IGNORE
    return _logprobs_at(model, last_hidden[:, :-1][keep], targets[keep], keep, chunk_size, summed)


def _logprobs_at(
    model: nn.Module, hidden: torch.Tensor, targets: torch.Tensor, keep: torch.Tensor, chunk_size: int, summed: bool
) -> torch.Tensor:
    """The LM head at the loss positions only; [B, T] log-probs, 0 elsewhere (keep is [B, T-1])."""
    softcap = getattr(model.config, "final_logit_softcapping", None)
    head = model.get_output_embeddings()
    if not can_fuse(head, softcap):
        picked = selected_logprobs(head, hidden, targets, chunk_size, softcap)
    elif not torch.is_grad_enabled():
        picked = chunk_logprobs(hidden, head.weight, targets, chunk_size)[0]
    elif summed:
        picked = SummedLogprobHead.apply(hidden, head.weight, targets, chunk_size)
    else:
        picked = RecomputedLogprobHead.apply(hidden, head.weight, targets, chunk_size)
    out = torch.zeros((keep.shape[0], keep.shape[1] + 1), dtype=torch.float32, device=keep.device)
    out[:, 1:][keep] = picked
    return out


def loss_hidden(
    model: nn.Module,
    input_ids: torch.Tensor,
    labels: torch.Tensor,
    position_ids: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The decoder once: final hidden states at the positions that predict a label [N, H], those
    labels [N], and where they are ([B, T-1] mask, row-major: the order of the N rows)."""
    return _decode(model, input_ids, labels, position_ids, attention_mask, None)[:3]


def _decode(model: nn.Module, input_ids, labels, position_ids, attention_mask, router: RouterAux | None):
    """(hidden [N, H] at loss positions, their labels [N], the [B, T-1] mask, router loss or None)."""
    extra = {"output_router_logits": True} if router is not None else {}
    decoder_out = model.get_decoder()(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False, **extra
    )
    aux = router(decoder_out.router_logits, attention_mask) if router is not None else None
    hidden = decoder_out.last_hidden_state[:, :-1]  # position t predicts token t + 1
    targets = labels[:, 1:]
    keep = targets != IGNORE
    return hidden[keep], targets[keep], keep, aux


class TokenLogprobs(nn.Module):
    """Wraps a causal LM so that its forward returns token log-probs.

    The training loop hands this wrapper to accelerate, so DDP/FSDP see every computation as part of
    one module forward (calling the decoder directly on a DDP-wrapped model would skip its hooks).
    """

    def __init__(self, model: nn.Module, chunk_size: int = 256):
        super().__init__()
        self.model, self.chunk_size = model, chunk_size
        # FSDP auto-wrapping reads the decoder-layer class names from here.
        self._no_split_modules = getattr(model, "_no_split_modules", None)
        self.router = router_aux_for(model)  # None for a dense model
        self._aux_losses: dict[str, list[torch.Tensor]] = {}

    def forward(
        self,
        input_ids,
        labels,
        position_ids=None,
        attention_mask=None,
        summed: bool = False,
        segment_ids=None,
        per_unit: int = SEGMENTS_PER_PAIR,
    ) -> torch.Tensor:
        # Auxiliary losses are kept only for forwards that train (not reference or eval passes).
        training = torch.is_grad_enabled()
        logps, router_loss = logprobs_and_router_aux(
            self.model,
            input_ids,
            labels,
            position_ids,
            attention_mask,
            self.chunk_size,
            summed,
            self.router if training else None,
            segment_ids,
            per_unit,
        )
        model_losses = getattr(self.model, "auxiliary_losses", None)  # e.g. Control LLM's divergence
        found = model_losses() if callable(model_losses) else {}
        if router_loss is not None:
            found = {**found, "router_aux_loss": router_loss}
        for name, loss in found.items() if training else ():
            self._aux_losses.setdefault(name, []).append(loss)
        return logps

    def take_aux_losses(self) -> dict[str, torch.Tensor]:
        """Mean of each weighted auxiliary loss (MoE router balance, Control LLM divergence) over the
        training forwards since the last call; empty for a plain model. The training loop adds them
        to each micro-batch's objective: the one place every stage passes through, so no stage can
        drop them."""
        losses, self._aux_losses = self._aux_losses, {}
        return {name: torch.stack(values).mean() for name, values in losses.items()}
