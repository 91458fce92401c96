"""An eager attention function that also hands each layer's attention to an active recorder.

Registered with transformers' AttentionInterface (and the eager mask) under RECORDING, so a model
switched to it computes exactly what "eager" computes. Only what the eviction methods need is kept
from each call: H2O the chunk's softmax attention over the cache ([B, heads, C, T], which eager
attention computes anyway; policies.accumulate_attention sums it); Locret's training the maximum
pre-softmax logit q.k/sqrt(d) over chosen query rows ([B, kv_heads, T]). During chunked prefill a
call materialises only chunk x cache scores, never the full context's T x T.
"""

from __future__ import annotations

import contextlib

import torch

RECORDING = "posttrain_kv_recording"
_ACTIVE: list[AttentionRecorder] = []


class AttentionRecorder:
    """What one forward's attention layers reported, by layer index."""

    def __init__(self, weights: bool = False, logit_rows: torch.Tensor | None = None):
        self.want_weights = weights
        self.logit_rows = logit_rows  # query indices (within the forward) whose max logits are kept
        self.weights: dict[int, torch.Tensor] = {}
        self.max_logits: dict[int, torch.Tensor] = {}

    def see(self, layer: int, query: torch.Tensor, key: torch.Tensor, weights: torch.Tensor, scaling: float) -> None:
        b, heads, _, total = weights.shape
        kv_heads = key.shape[1]
        if self.want_weights:
            self.weights[layer] = weights.detach()
        if self.logit_rows is not None:
            q = query[:, :, self.logit_rows].detach().float()
            k = key.detach().float().repeat_interleave(heads // kv_heads, dim=1)
            logits = (q @ k.transpose(-1, -2)) * scaling  # [B, heads, rows, T]
            self.max_logits[layer] = logits.reshape(b, kv_heads, heads // kv_heads, -1, total).amax(dim=(2, 3))


def _recording_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    from transformers.models.llama.modeling_llama import eager_attention_forward

    scaling = module.scaling if scaling is None else scaling
    output, weights = eager_attention_forward(
        module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs
    )
    if _ACTIVE:
        _ACTIVE[-1].see(module.layer_idx, query, key, weights, scaling)
    return output, weights


def use_recording_attention(model) -> None:
    """Switch `model` to the recording eager attention (registered once per process)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(RECORDING, _recording_attention)
    AttentionMaskInterface.register(RECORDING, eager_mask)
    model.set_attn_implementation(RECORDING)


@contextlib.contextmanager
def recording(recorder: AttentionRecorder):
    """Make `recorder` receive the attention of the forwards run inside the block."""
    _ACTIVE.append(recorder)
    try:
        yield recorder
    finally:
        _ACTIVE.remove(recorder)
