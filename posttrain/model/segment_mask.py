"""The attention mask of the shared-prefix layout (data/shared_prefix.py), built once per forward.

A token attends to the tokens before it that belong to its own pair and are in the pair's prefix
(block 0) or in its own segment; a response never sees another response, nor another pair packed
in the same row. transformers passes a 4D mask through unchanged (masking_utils.
_preprocess_mask_arguments returns it as-is) to the attention function. Both SDPA and the eager
path get it as an additive float mask (0 = attend, the dtype's minimum = not): SDPA would turn a
boolean mask into a float one inside every layer's call and keep each copy for backward (4 x 4.5
MiB in the DPO bench), while one float mask is shared by all layers. Other backends (flash attention, flex attention) cannot
take a dense 4D mask: callers check supports_segment_mask and keep the one-row-per-response layout.
"""

from __future__ import annotations

import logging

import torch

from posttrain.data.shared_prefix import SEGMENTS_PER_PAIR

MASKABLE_BACKENDS = ("sdpa", "eager")

logger = logging.getLogger(__name__)


def attention_backend(model) -> str:
    return getattr(model.config, "_attn_implementation", None) or "eager"


def supports_segment_mask(model) -> bool:
    return attention_backend(model) in MASKABLE_BACKENDS


def use_shared_prefix(model, wanted: bool) -> bool:
    """preference.shared_prefix where the attention backend can take the mask, else (said once
    in the log) the one-row-per-response layout."""
    if wanted and not supports_segment_mask(model):
        logger.warning(
            "preference.shared_prefix: attention backend '%s' cannot take the shared-prefix "
            "mask; scoring chosen and rejected as separate rows (sdpa or eager share the prompt)",
            attention_backend(model),
        )
        return False
    return wanted


def use_segment_packing(model, wanted: bool, stage: str) -> bool:
    """data.pack for a stage that packs by segment mask (KTO, GRPO/PPO scoring) where the attention
    backend can take the mask, else (said once in the log) one row per example."""
    if wanted and not supports_segment_mask(model):
        logger.warning(
            "data.pack: attention backend '%s' cannot take the segment mask; %s scores one "
            "example per row (sdpa or eager pack)",
            attention_backend(model),
            stage,
        )
        return False
    return bool(wanted)


def segment_attention_mask(
    segment_ids: torch.Tensor, dtype: torch.dtype, per_unit: int = SEGMENTS_PER_PAIR
) -> torch.Tensor:
    """[B, 1, T, T] additive mask from [B, T] segment ids (per_unit * unit + block, as collated):
    causal, same unit, and prefix-or-same-segment (padding, -1, is a segment of its own). Every
    query sees at least itself, so no row is fully masked. For MASKABLE_BACKENDS only (callers
    check supports_segment_mask)."""
    t = segment_ids.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool, device=segment_ids.device).tril()
    query, key = segment_ids[:, :, None], segment_ids[:, None, :]
    pair_prefix = torch.div(query, per_unit, rounding_mode="floor") * per_unit
    allowed = (causal & ((key == query) | ((key == pair_prefix) & (query >= 0))))[:, None]
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)
