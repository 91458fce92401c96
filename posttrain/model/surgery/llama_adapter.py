"""LLaMA-Adapter V2 (Gao et al. 2023, "LLaMA-Adapter V2: Parameter-Efficient Visual Instruction
Model"), the language-only parts: on a frozen base,

- zero-init gated adaption prompts (LLaMA-Adapter, Zhang et al. 2023) in the top L layers: K
  learnable prompt vectors P per layer; every token's query also attends to the prompts' keys
  and values (the layer's own k_proj/v_proj of P, no RoPE), in a separate softmax scaled by a
  per-head gate g initialised to 0:   out += W_o (tanh(g_h) * softmax(q_h K_P^T / sqrt(d)) V_P)
- bias and scale on every linear layer of the decoder: y = s * (W x + b), with b = 0, s = 1 at init;
- unfrozen normalisation weights.

Only those are trained. At init the gate is 0, b = 0, s = 1, so the model is exactly the base.
The pieces are attached to the base modules as extra parameters and forward hooks (the base's
parameter names and attention implementation are untouched); surgery/wrapper.py saves and loads
only the trained tensors. Following the public V2 code, prompts see no positional encoding and
gates are per head; tanh on the gate follows LLaMA-Adapter's zero-init attention.
"""

from __future__ import annotations

import importlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from posttrain.errors import UserError
from posttrain.model.surgery.expand import decoder_layers

KIND = "llama_adapter_v2"


def top_layers(num_layers: int, count: int | None) -> list[int]:
    """Indices of the top `count` layers (None: all)."""
    count = num_layers if count is None else count
    if not 1 <= count <= num_layers:
        raise UserError(
            f"adapter.prompt_layers: {count} out of range: the model has {num_layers} layers (1..{num_layers})"
        )
    return list(range(num_layers - count, num_layers))


def _check_attention(attn: nn.Module) -> None:
    parts = ("q_proj", "k_proj", "v_proj", "o_proj")
    if not all(isinstance(getattr(attn, p, None), nn.Linear) for p in parts) or not hasattr(attn, "head_dim"):
        raise UserError(
            f"adapter.kind: {KIND} needs Llama-style attention (q/k/v/o_proj, head_dim); "
            f"{type(attn).__name__} does not fit"
        )


def add_bias_scale(linear: nn.Linear) -> None:
    """y = s * (W x + b) through a forward hook; b and s live on the linear as extra parameters."""
    out = linear.out_features
    linear.register_parameter("adapter_bias", nn.Parameter(torch.zeros(out, dtype=linear.weight.dtype)))
    linear.register_parameter("adapter_scale", nn.Parameter(torch.ones(out, dtype=linear.weight.dtype)))
    linear.register_forward_hook(lambda mod, args, y: mod.adapter_scale * (y + mod.adapter_bias))


class AdaptionPrompt(nn.Module):
    """K prompt vectors and one gate per head, for one attention layer."""

    def __init__(self, length: int, hidden: int, heads: int, dtype: torch.dtype):
        super().__init__()
        self.prompt = nn.Parameter(torch.randn(length, hidden, dtype=dtype) * 0.02)
        self.gate = nn.Parameter(torch.zeros(heads, dtype=dtype))


def prompt_attention(
    attn: nn.Module, adaption: AdaptionPrompt, hidden: torch.Tensor, position_embeddings, rotary
) -> torch.Tensor:
    """[B, T, hidden]: W_o-less output of the gated prompt attention (before o_proj's weight)."""
    batch, length = hidden.shape[:2]
    d, heads = attn.head_dim, adaption.gate.shape[0]
    q = attn.q_proj(hidden).view(batch, length, heads, d).transpose(1, 2)
    if position_embeddings is not None:  # queries carry RoPE exactly as in the layer's attention
        cos, sin = position_embeddings
        q, _ = rotary(q, q, cos, sin)
    k = attn.k_proj(adaption.prompt).view(-1, attn.k_proj.out_features // d, d).transpose(0, 1)
    v = attn.v_proj(adaption.prompt).view(-1, attn.v_proj.out_features // d, d).transpose(0, 1)
    groups = heads // k.shape[0]  # grouped-query attention: each KV head serves `groups` query heads
    k, v = k.repeat_interleave(groups, 0), v.repeat_interleave(groups, 0)
    scores = torch.softmax((q @ k.transpose(-1, -2)).float() / math.sqrt(d), dim=-1).to(q.dtype)
    out = torch.tanh(adaption.gate).view(1, heads, 1, 1) * (scores @ v)  # [B, H, T, d]
    return out.transpose(1, 2).reshape(batch, length, heads * d)


def _attention_hook(rotary):
    def hook(attn, args, kwargs, output):
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        extra = prompt_attention(attn, attn.adaption, hidden, kwargs.get("position_embeddings"), rotary)
        o_proj = attn.o_proj
        extra = F.linear(extra, o_proj.weight)  # W_o (attn + prompts): o_proj's bias counted once
        if hasattr(o_proj, "adapter_scale"):
            extra = extra * o_proj.adapter_scale
        return (output[0] + extra, *output[1:])

    return hook


def add_llama_adapter_v2(model, prompt_length: int, prompt_layers: int | None) -> list[int]:
    """Attach the V2 parameters (in place), freeze everything else; returns the prompted layers."""
    layers = decoder_layers(model)
    for layer in layers:
        _check_attention(getattr(layer, "self_attn", None))
    if prompt_length < 1:
        raise UserError(f"adapter.prompt_length must be >= 1, got {prompt_length}")
    prompted = top_layers(len(layers), prompt_layers)
    rotary = importlib.import_module(type(layers[0]).__module__).apply_rotary_pos_emb
    model.requires_grad_(False)
    for index, layer in enumerate(layers):
        for module in list(layer.modules()):
            if isinstance(module, nn.Linear):
                add_bias_scale(module)
        attn = layer.self_attn
        if index in prompted:
            heads = attn.q_proj.out_features // attn.head_dim
            attn.adaption = AdaptionPrompt(prompt_length, attn.q_proj.in_features, heads, attn.q_proj.weight.dtype)
            attn.register_forward_hook(_attention_hook(rotary), with_kwargs=True)
    for module in model.modules():
        if "norm" in type(module).__name__.lower():
            module.requires_grad_(True)
    return prompted


def trained_names(model) -> list[str]:
    return [name for name, p in model.named_parameters() if p.requires_grad]
