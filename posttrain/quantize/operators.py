"""Weight-only quantisers as pure functions: a weight tensor in, its dequantised (simulated)
tensor out, so a quantised model is an ordinary float model directory that `posttrain eval` and
every other command load unchanged. What is measured is the error quantisation puts in the
weights; the memory and speed of packed low-bit kernels are not.

- RTN (round to nearest), asymmetric min-max per group of `group_size` consecutive input weights
  (the low-bit LLaMA-3 study's baseline, Huang et al. 2024): with levels L = 2^bits - 1,
      scale = (max - min) / L,  zero = round(-min / scale),
      q = clamp(round(w / scale) + zero, 0, L),  w' = (q - zero) * scale.
  group_size None: one group per output row (per-channel); a row that group_size does not
  divide ends in one shorter group.
- NF4 (QLoRA, Dettmers et al. 2023) and int8 (LLM.int8's row-wise absmax, without its fp16
  outlier columns): bitsandbytes' own quantise/dequantise functions, so the weights are exactly
  what its 4-bit / 8-bit layers compute with.

Only the linear layers of the decoder are quantised (2-D weights other than the embeddings and
the LM head), as GPTQ, AWQ and bitsandbytes' loaders do.
"""

from __future__ import annotations

import torch

RTN_BITS = range(2, 9)
SKIPPED = ("embed_tokens", "lm_head", "wte", "embed_out")


def linear_weight_name(name: str) -> bool:
    """Not an embedding or the LM head (which stay in full precision)."""
    return not any(s in name for s in SKIPPED)


def quantisable(name: str, tensor: torch.Tensor) -> bool:
    return tensor.dim() == 2 and tensor.is_floating_point() and linear_weight_name(name)


def rtn(weight: torch.Tensor, bits: int, group_size: int | None) -> torch.Tensor:
    """Round-to-nearest asymmetric quantisation per group of the last (input) dimension,
    dequantised. When group_size does not divide the row, the last group of each row is shorter."""
    if bits not in RTN_BITS:
        raise ValueError(f"rtn bits must be 2..8, got {bits}")
    cols = weight.shape[1]
    size = min(group_size or cols, cols)
    full = cols - cols % size
    parts = [_rtn_groups(weight[:, :full], bits, size)]
    if full < cols:
        parts.append(_rtn_groups(weight[:, full:], bits, cols - full))
    return torch.cat(parts, dim=1).to(weight.dtype)


def _rtn_groups(weight: torch.Tensor, bits: int, size: int) -> torch.Tensor:
    rows, cols = weight.shape
    w = weight.float().reshape(rows, cols // size, size)
    low, high = w.amin(dim=-1, keepdim=True), w.amax(dim=-1, keepdim=True)
    levels = 2**bits - 1
    scale = ((high - low) / levels).clamp(min=1e-8)
    zero = torch.round(-low / scale)
    q = torch.clamp(torch.round(w / scale) + zero, 0, levels)
    return ((q - zero) * scale).reshape(rows, cols)


def nf4(weight: torch.Tensor, group_size: int | None) -> torch.Tensor:
    """bitsandbytes NF4 with absmax blocks of group_size (default 64, QLoRA's), dequantised."""
    import bitsandbytes.functional as bnb

    q, state = bnb.quantize_4bit(weight.float().contiguous(), blocksize=group_size or 64, quant_type="nf4")
    return bnb.dequantize_4bit(q, state).to(weight.dtype)


def int8(weight: torch.Tensor) -> torch.Tensor:
    """bitsandbytes' row-wise absmax int8 (scale = max|w_row| / 127), dequantised."""
    import bitsandbytes.functional as bnb

    q, row_stats, _ = bnb.int8_vectorwise_quant(weight.float().contiguous())
    return bnb.int8_vectorwise_dequant(q, row_stats).to(weight.dtype)


def quantize_state(
    state: dict[str, torch.Tensor], method: str, bits: int, group_size: int | None
) -> dict[str, torch.Tensor]:
    """Every quantisable weight of a state dict through one method; other tensors unchanged."""

    def one(w: torch.Tensor) -> torch.Tensor:
        if method == "rtn":
            return rtn(w, bits, group_size)
        if method == "nf4":
            return nf4(w, group_size)
        if method == "int8":
            return int8(w)
        raise ValueError(f"unknown quantisation method {method!r}")

    return {k: one(v) if quantisable(k, v) else v for k, v in state.items()}
