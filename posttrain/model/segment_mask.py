"""The attention mask of the shared-prefix layout (data/shared_prefix.py), built once per forward.

A token attends to the tokens before it that are in the shared prefix (segment 0) or in its own
segment; a response never sees another response of the same pair. transformers passes a 4D mask
through unchanged (masking_utils._preprocess_mask_arguments returns it as-is) to the attention
function: SDPA takes it as a boolean mask (True = attend), the eager path adds it to the scores,
so it gets an additive float mask there. Other backends (flash attention, flex attention) cannot
take a dense 4D mask: callers check supports_segment_mask and keep the one-row-per-response layout.
"""

from __future__ import annotations

import torch

MASKABLE_BACKENDS = ("sdpa", "eager")


def attention_backend(model) -> str:
    return getattr(model.config, "_attn_implementation", None) or "eager"


def supports_segment_mask(model) -> bool:
    return attention_backend(model) in MASKABLE_BACKENDS


def segment_attention_mask(segment_ids: torch.Tensor, backend: str, dtype: torch.dtype) -> torch.Tensor:
    """[B, 1, T, T] mask from [B, T] segment ids: causal, and prefix-or-same-segment."""
    t = segment_ids.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool, device=segment_ids.device).tril()
    query, key = segment_ids[:, :, None], segment_ids[:, None, :]
    allowed = (causal & ((key == 0) | (key == query)))[:, None]
    if backend == "sdpa":
        return allowed
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(
        ~allowed, torch.finfo(dtype).min)
