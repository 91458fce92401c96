"""Learned Embedding Propagation (LEP; Tikhomirov & Chernyshev 2024, "Facilitating Large Language
Model Russian Adaptation with Learned Embedding Propagation").

A base model B gets an extended vocabulary and trained embeddings (A); the instruct model I was
tuned from B with the old vocabulary. LEP gives I the new vocabulary without instruction data by
moving A's embeddings into I (input and output matrices separately). Old tokens keep their ids
[0, V) in A; new tokens are the rows V.. of A.

  swap        E = E_A
  overlap     E = E_A with the shared rows [0, V) replaced by E_I (keep what instruction tuning
              learned for old tokens, take the new tokens from A)
  projection  instruction tuning is taken to act on embeddings as a linear map W fitted by least
              squares on the shared tokens, E_B[:V] W ~ E_I; then E = E_A W
"""

from __future__ import annotations

import torch

from posttrain.errors import UserError

METHODS = ("swap", "overlap", "projection")


@torch.no_grad()
def propagate(adapted: torch.Tensor, instruct: torch.Tensor, base: torch.Tensor, method: str) -> torch.Tensor:
    """The instruct model's new embedding matrix [V_A, H] (a pure function of the three matrices)."""
    if method not in METHODS:
        raise UserError(f"--method must be one of {', '.join(METHODS)}, got '{method}'")
    shared = instruct.shape[0]
    if base.shape != instruct.shape or adapted.shape[0] < shared or adapted.shape[1] != instruct.shape[1]:
        raise UserError(
            f"embedding shapes do not fit: base {tuple(base.shape)}, instruct "
            f"{tuple(instruct.shape)}, adapted {tuple(adapted.shape)} (adapted must extend base)"
        )
    if method == "swap":
        return adapted.clone()
    if method == "overlap":
        out = adapted.clone()
        out[:shared] = instruct
        return out
    w = torch.linalg.lstsq(base.double(), instruct.double()).solution  # [H, H]
    return (adapted.double() @ w).to(adapted.dtype)
