"""A heterogeneous Llama for Puzzle (Bercovich et al. 2024, "Puzzle: Distillation-Based NAS for
Inference-Optimized LLMs"): every decoder block keeps Llama's computation but may have its own
number of KV heads, its own FFN width, or an attention / FFN sub-block replaced by a no-op
(the residual stream passes through unchanged).

    config.block_configs = [{"kv_heads": 2, "intermediate_size": 688},   # the parent's block
                            {"kv_heads": 0, "intermediate_size": 344}]   # no attention, FFN at 50%

0 means "no-op". A no-op sub-block also drops its RMSNorm (its output would be unused). A no-op
attention still appends a zero-head entry to the KV cache, so the cache's length (from which
generation derives positions) stays right even when block 0 has no attention.

Such a model does not fit LlamaConfig, so it is saved as `model_type: puzzle_llama`; importing
this module (every posttrain model loader does, through model/load.py) registers it with
AutoConfig / AutoModelForCausalLM, so `from_pretrained` loads it with trust_remote_code off.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM
from transformers.models.llama.modeling_llama import LlamaMLP

_CACHE_KWARGS = ("cache", "past_key_values", "past_key_value")


class NoOpAttention(nn.Module):
    """Contributes nothing to the residual stream; keeps the KV cache's length in step."""

    def __init__(self, layer_idx: int, head_dim: int):
        super().__init__()
        self.layer_idx, self.head_dim = layer_idx, head_dim

    def forward(self, hidden_states, *args, **kwargs):
        cache = next((kwargs[k] for k in _CACHE_KWARGS if kwargs.get(k) is not None), None)
        if cache is not None:
            batch, length = hidden_states.shape[:2]
            empty = hidden_states.new_zeros(batch, 0, length, self.head_dim)
            cache.update(empty, empty, self.layer_idx)
        return torch.zeros_like(hidden_states), None


class NoOpMLP(nn.Module):
    def forward(self, hidden_states):
        return torch.zeros_like(hidden_states)


class PuzzleLlamaConfig(LlamaConfig):
    model_type = "puzzle_llama"

    def __init__(self, block_configs: list[dict] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.block_configs = [dict(b) for b in (block_configs or [])]


def parent_block(config: LlamaConfig) -> dict:
    """The block configuration that reproduces a Llama block of `config`."""
    return {"kv_heads": config.num_key_value_heads, "intermediate_size": config.intermediate_size}


def head_dim(config: LlamaConfig) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def narrow_attention(attention: nn.Module, config: LlamaConfig, kv_heads: int) -> nn.Module:
    """The attention module with `kv_heads` key/value heads (fresh k/v projections)."""
    hd, bias = head_dim(config), config.attention_bias
    attention.k_proj = nn.Linear(config.hidden_size, kv_heads * hd, bias=bias)
    attention.v_proj = nn.Linear(config.hidden_size, kv_heads * hd, bias=bias)
    attention.num_key_value_groups = config.num_attention_heads // kv_heads
    return attention


def narrow_mlp(config: LlamaConfig, intermediate_size: int) -> LlamaMLP:
    narrow = copy.copy(config)
    narrow.intermediate_size = intermediate_size
    mlp = LlamaMLP(narrow)
    mlp.config = config
    return mlp


def apply_block_config(layer: nn.Module, config: LlamaConfig, index: int, block: dict) -> None:
    """Reshape one LlamaDecoderLayer in place to `block` (fresh weights where a shape changes)."""
    kv, width = int(block["kv_heads"]), int(block["intermediate_size"])
    if kv == 0:
        layer.self_attn, layer.input_layernorm = NoOpAttention(index, head_dim(config)), nn.Identity()
    elif kv != config.num_key_value_heads:
        narrow_attention(layer.self_attn, config, kv)
    if width == 0:
        layer.mlp, layer.post_attention_layernorm = NoOpMLP(), nn.Identity()
    elif width != config.intermediate_size:
        layer.mlp = narrow_mlp(config, width)


def check_block_configs(config: LlamaConfig, blocks: list[dict]) -> None:
    if len(blocks) != config.num_hidden_layers:
        raise ValueError(f"block_configs has {len(blocks)} entries for {config.num_hidden_layers} layers")
    for i, block in enumerate(blocks):
        kv, width = int(block["kv_heads"]), int(block["intermediate_size"])
        if kv < 0 or (kv and config.num_attention_heads % kv) or width < 0:
            raise ValueError(
                f"block_configs[{i}]: kv_heads {kv} must be 0 or divide "
                f"{config.num_attention_heads} heads; intermediate_size {width} >= 0"
            )


class PuzzleLlamaForCausalLM(LlamaForCausalLM):
    config_class = PuzzleLlamaConfig

    def __init__(self, config: PuzzleLlamaConfig):
        super().__init__(config)
        blocks = config.block_configs or [parent_block(config)] * config.num_hidden_layers
        check_block_configs(config, blocks)
        for i, (layer, block) in enumerate(zip(self.model.layers, blocks)):
            apply_block_config(layer, config, i, block)


def puzzle_config(parent: LlamaConfig, blocks: list[dict]) -> PuzzleLlamaConfig:
    fields = {k: v for k, v in parent.to_dict().items() if k not in ("model_type", "architectures")}
    config = PuzzleLlamaConfig(block_configs=blocks, **fields)
    config.architectures = [PuzzleLlamaForCausalLM.__name__]
    return config


AutoConfig.register(PuzzleLlamaConfig.model_type, PuzzleLlamaConfig, exist_ok=True)
AutoModelForCausalLM.register(PuzzleLlamaConfig, PuzzleLlamaForCausalLM, exist_ok=True)
