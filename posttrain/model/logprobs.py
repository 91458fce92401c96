"""Per-token log-probs of the labels, without ever building full-vocabulary logits for the batch.

The decoder runs once; the LM head is applied only at positions that carry a loss, a chunk of
positions at a time, with log-softmax and gather inside the chunk and the chunk recomputed in
backward (activation checkpointing). Peak memory for the head is chunk_size x vocab, not
batch x length x vocab: with Llama-3's 128K vocabulary that is what decides whether a batch fits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from posttrain.data.batching import IGNORE
from posttrain.model.fused_head import SummedLogprobHead, can_fuse


def _chunk_logprobs(head: nn.Module, hidden: torch.Tensor, targets: torch.Tensor,
                    softcap: float | None) -> torch.Tensor:
    logits = head(hidden).float()
    if softcap:  # Gemma-2 style final-logit soft-capping, as the model's own forward applies it
        logits = torch.tanh(logits / softcap) * softcap
    return -F.cross_entropy(logits, targets, reduction="none")


def selected_logprobs(head: nn.Module, hidden: torch.Tensor, targets: torch.Tensor,
                      chunk_size: int = 256, softcap: float | None = None) -> torch.Tensor:
    """log p(targets[i] | hidden[i]) for rows of `hidden` [N, H], chunk by chunk."""
    pieces = []
    for start in range(0, hidden.shape[0], chunk_size):
        h, t = hidden[start : start + chunk_size], targets[start : start + chunk_size]
        if torch.is_grad_enabled() and h.requires_grad:
            pieces.append(checkpoint(_chunk_logprobs, head, h, t, softcap, use_reentrant=False))
        else:
            pieces.append(_chunk_logprobs(head, h, t, softcap))
    return torch.cat(pieces) if pieces else hidden.new_zeros(0, dtype=torch.float32)


def token_logprobs(model: nn.Module, input_ids: torch.Tensor, labels: torch.Tensor,
                   position_ids: torch.Tensor | None = None,
                   attention_mask: torch.Tensor | None = None,
                   chunk_size: int = 256, summed: bool = False) -> torch.Tensor:
    """[B, T] float32: at t, log p(labels[t] | tokens < t); 0 where labels[t] is IGNORE or t = 0.
    summed=True promises that the caller's loss is a scaled sum of these log-probs (NLL), which
    lets the head compute its gradient in the forward pass (model/fused_head.py)."""
    decoder_out = model.get_decoder()(input_ids=input_ids, attention_mask=attention_mask,
                                      position_ids=position_ids, use_cache=False)
    return logprobs_from_hidden(model, decoder_out.last_hidden_state, labels, chunk_size, summed)


def logprobs_from_hidden(model: nn.Module, last_hidden: torch.Tensor, labels: torch.Tensor,
                         chunk_size: int = 256, summed: bool = False) -> torch.Tensor:
    """token_logprobs from the decoder's last hidden states [B, T, H] (a caller that needs them for
    something else too, e.g. PPO's value head on the policy, runs the decoder once)."""
    hidden = last_hidden[:, :-1]  # position t predicts token t + 1
    targets = labels[:, 1:]
    keep = targets != IGNORE
    softcap = getattr(model.config, "final_logit_softcapping", None)
    head = model.get_output_embeddings()
    if summed and torch.is_grad_enabled() and can_fuse(head, softcap):
        picked = SummedLogprobHead.apply(hidden[keep], head.weight, targets[keep], chunk_size)
    else:
        picked = selected_logprobs(head, hidden[keep], targets[keep], chunk_size, softcap)
    out = torch.zeros(labels.shape, dtype=torch.float32, device=labels.device)
    out[:, 1:][keep] = picked
    return out


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

    def forward(self, input_ids, labels, position_ids=None, attention_mask=None,
                summed: bool = False) -> torch.Tensor:
        return token_logprobs(self.model, input_ids, labels, position_ids, attention_mask,
                              self.chunk_size, summed)
