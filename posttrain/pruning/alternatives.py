"""Puzzle's replacement library in small form: the cheaper sub-blocks a parent Llama block may be
swapped for, their parameter costs, and their initialisation from the parent (Bercovich et al.
2024, section 3: KV heads mean-pooled into fewer groups, FFN channels kept by importance).

Names in a recipe: attention `kvN` (N key/value heads; N divides the parent's KV heads) or `noop`;
FFN `ffnP` (P% of the parent's intermediate channels, 1 <= P < 100) or `noop`. The parent's own
sub-blocks are always candidates.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

import torch
from torch import nn

from posttrain.errors import UserError
from posttrain.model.hetero_llama import (
    NoOpAttention,
    NoOpMLP,
    head_dim,
    narrow_attention,
    narrow_mlp,
)


@dataclass(frozen=True)
class Choice:
    """One block variant: `kv_heads` (0: no attention) and `intermediate_size` (0: no FFN)."""

    kv_heads: int
    intermediate_size: int

    def block_config(self) -> dict:
        return {"kv_heads": self.kv_heads, "intermediate_size": self.intermediate_size}

    def name(self) -> str:
        return f"attn={'noop' if not self.kv_heads else f'kv{self.kv_heads}'} ffn={self.intermediate_size or 'noop'}"


def attention_options(config, names: list[str]) -> list[int]:
    """KV-head counts for the attention names, the parent's first (0 = no-op)."""
    parent = config.num_key_value_heads
    found = [parent]
    for name in names:
        match = re.fullmatch(r"kv(\d+)", name)
        if name == "noop":
            kv = 0
        elif match and int(match[1]) >= 1 and parent % int(match[1]) == 0 and int(match[1]) <= parent:
            kv = int(match[1])
        else:
            raise UserError(
                f"alternatives.attention: unknown alternative '{name}'; use kvN (N divides "
                f"the parent's {parent} KV heads) or noop"
            )
        found += [kv] if kv not in found else []
    return found


def ffn_options(config, names: list[str]) -> list[int]:
    """FFN widths for the FFN names, the parent's first (0 = no-op)."""
    parent = config.intermediate_size
    found = [parent]
    for name in names:
        match = re.fullmatch(r"ffn(\d+)", name)
        if name == "noop":
            width = 0
        elif match and 1 <= int(match[1]) < 100:
            width = max(1, round(parent * int(match[1]) / 100))
        else:
            raise UserError(
                f"alternatives.ffn: unknown alternative '{name}'; use ffnP (P% of the "
                f"intermediate channels, 1..99) or noop"
            )
        found += [width] if width not in found else []
    return found


def attention_params(config, kv_heads: int) -> int:
    """q, k, v, o projections (+ biases) and the input RMSNorm; 0 for a no-op."""
    if kv_heads == 0:
        return 0
    hd, hidden, heads = head_dim(config), config.hidden_size, config.num_attention_heads
    weights = 2 * hidden * heads * hd + 2 * hidden * kv_heads * hd
    biases = (heads * hd + 2 * kv_heads * hd + hidden) if config.attention_bias else 0
    return weights + biases + hidden


def ffn_params(config, width: int) -> int:
    """gate, up, down projections (+ biases) and the post-attention RMSNorm; 0 for a no-op."""
    if width == 0:
        return 0
    hidden = config.hidden_size
    biases = (2 * width + hidden) if config.mlp_bias else 0
    return 3 * hidden * width + biases + hidden


def block_params(config, choice: Choice) -> int:
    return attention_params(config, choice.kv_heads) + ffn_params(config, choice.intermediate_size)


def pooled_attention(parent: nn.Module, config, kv_heads: int) -> nn.Module:
    """A copy of the parent's attention with its KV heads mean-pooled into `kv_heads` groups of
    consecutive heads (the query heads a group served share the pooled head), or a no-op."""
    if kv_heads == 0:
        return NoOpAttention(parent.layer_idx, head_dim(config))
    attention = copy.deepcopy(parent)
    if kv_heads == config.num_key_value_heads:
        return attention
    parent_k, parent_v = parent.k_proj, parent.v_proj
    narrow_attention(attention, config, kv_heads)
    hd, group = head_dim(config), config.num_key_value_heads // kv_heads
    with torch.no_grad():
        for new, old in ((attention.k_proj, parent_k), (attention.v_proj, parent_v)):
            new.weight.copy_(old.weight.view(kv_heads, group, hd, -1).mean(1).reshape(kv_heads * hd, -1))
            if old.bias is not None:
                new.bias.copy_(old.bias.view(kv_heads, group, hd).mean(1).reshape(-1))
    return attention.to(parent_k.weight.dtype)


@torch.no_grad()
def channel_importance(mlp: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Per intermediate channel j: mean over tokens of |act(gate_j x) * up_j x| times the norm of
    down_proj's column j, i.e. the average size of what channel j adds to the block's output."""
    acts = mlp.act_fn(mlp.gate_proj(inputs)) * mlp.up_proj(inputs)
    mean_abs = acts.abs().reshape(-1, acts.shape[-1]).float().mean(0)
    return mean_abs * mlp.down_proj.weight.float().norm(dim=0)


def pruned_mlp(parent: nn.Module, config, width: int, importance: torch.Tensor) -> nn.Module:
    """The parent's FFN keeping its `width` most important channels (in their original order)."""
    if width == 0:
        return NoOpMLP()
    if width == config.intermediate_size:
        return copy.deepcopy(parent)
    keep = importance.topk(width).indices.sort().values
    mlp = narrow_mlp(config, width).to(parent.down_proj.weight.dtype)
    with torch.no_grad():
        for name in ("gate_proj", "up_proj"):
            getattr(mlp, name).weight.copy_(getattr(parent, name).weight[keep])
            if getattr(parent, name).bias is not None:
                getattr(mlp, name).bias.copy_(getattr(parent, name).bias[keep])
        mlp.down_proj.weight.copy_(parent.down_proj.weight[:, keep])
        if parent.down_proj.bias is not None:
            mlp.down_proj.bias.copy_(parent.down_proj.bias)
    return mlp


class AttentionBranch(nn.Module):
    """norm -> attention: what a decoder layer adds to the residual stream before its FFN."""

    def __init__(self, norm: nn.Module, attention: nn.Module):
        super().__init__()
        self.norm, self.attention = norm, attention

    def forward(self, hidden_states, position_embeddings=None, attention_mask=None):
        return self.attention(
            self.norm(hidden_states), position_embeddings=position_embeddings, attention_mask=attention_mask
        )[0]


class FfnBranch(nn.Module):
    """norm -> FFN: what a decoder layer adds to the residual stream after its attention."""

    def __init__(self, norm: nn.Module, mlp: nn.Module):
        super().__init__()
        self.norm, self.mlp = norm, mlp

    def forward(self, hidden_states):
        return self.mlp(self.norm(hidden_states))


def attention_branch(layer: nn.Module, config, kv_heads: int) -> AttentionBranch:
    norm = nn.Identity() if kv_heads == 0 else copy.deepcopy(layer.input_layernorm)
    return AttentionBranch(norm, pooled_attention(layer.self_attn, config, kv_heads))


def ffn_branch(layer: nn.Module, config, width: int, importance: torch.Tensor) -> FfnBranch:
    norm = nn.Identity() if width == 0 else copy.deepcopy(layer.post_attention_layernorm)
    return FfnBranch(norm, pruned_mlp(layer.mlp, config, width, importance))


def install(layer: nn.Module, attention: AttentionBranch, ffn: FfnBranch) -> None:
    """Put the branches' modules into a decoder layer (in place)."""
    layer.input_layernorm, layer.self_attn = attention.norm, attention.attention
    layer.post_attention_layernorm, layer.mlp = ffn.norm, ffn.mlp
