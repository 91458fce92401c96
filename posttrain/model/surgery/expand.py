"""Block expansion (LLaMA Pro, Wu et al. 2024, "LLaMA Pro: Progressive LLaMA with Block Expansion").

Copies of chosen decoder blocks are inserted right after their originals, with the two output
projections of each copy (attention o_proj and MLP down_proj) set to zero. A pre-norm residual
block then computes h + attn(norm(h)) @ 0 + mlp(...) @ 0 = h: the expanded model is exactly the
original at init. Training only the copies ("adapter.kind: llama_pro") adds capacity for a new
domain while every original weight stays bit-identical. The paper's placement is interleaved: the
L blocks split into groups of k, a copy after the last block of each group (`every=k`).

The result is a plain model of the same architecture with more layers; the new layers' indices
are kept in its config as `posttrain_new_blocks`, which transformers carries as an extra field.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from posttrain.errors import UserError

NEW_BLOCKS_KEY = "posttrain_new_blocks"


def insertion_points(num_layers: int, blocks: list[int] | None = None, every: int | None = None) -> list[int]:
    """Indices of the original blocks to copy (each copy goes right after its original)."""
    if (blocks is None) == (every is None):
        raise UserError("block expansion: give exactly one of --blocks (indices) or --every K")
    if every is not None:
        if every < 1 or every > num_layers:
            raise UserError(
                f"block expansion: --every must be in 1..{num_layers} (the model has {num_layers} blocks), got {every}"
            )
        return list(range(every - 1, num_layers, every))
    bad = [b for b in blocks if not 0 <= b < num_layers]
    if bad or not blocks:
        raise UserError(
            f"block expansion: block index {bad[0] if bad else 'list empty'} out of range: "
            f"the model has {num_layers} blocks (0..{num_layers - 1})"
        )
    return sorted(set(blocks))


def decoder_layers(model) -> nn.ModuleList:
    layers = getattr(model.get_decoder(), "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise UserError(f"{type(model).__name__}: no decoder.layers list; block surgery needs a Llama-style decoder")
    return layers


def _output_projections(block: nn.Module) -> list[nn.Linear]:
    attn, mlp = getattr(block, "self_attn", None), getattr(block, "mlp", None)
    outs = [getattr(attn, "o_proj", None), getattr(mlp, "down_proj", None)]
    if not all(isinstance(o, nn.Linear) for o in outs):
        raise UserError(
            f"{type(block).__name__} has no self_attn.o_proj and mlp.down_proj: block "
            "expansion fits Llama-style (dense, pre-norm) blocks only"
        )
    return outs


@torch.no_grad()
def zero_output_copy(block: nn.Module) -> nn.Module:
    """A deep copy of `block` whose residual contributions are zero (o_proj, down_proj = 0)."""
    new = copy.deepcopy(block)
    for linear in _output_projections(new):
        linear.weight.zero_()
        if linear.bias is not None:
            linear.bias.zero_()
    return new


def expand_blocks(model, after: list[int]) -> list[int]:
    """Insert a zero-output copy after each original block in `after` (in place); returns the new
    blocks' indices in the expanded model and records them in the config."""
    layers = decoder_layers(model)
    for i in after:
        _output_projections(layers[i])  # check every block before changing anything
    expanded, new_indices = [], []
    for i, block in enumerate(layers):
        expanded.append(block)
        if i in after:
            expanded.append(zero_output_copy(block))
            new_indices.append(len(expanded) - 1)
    model.get_decoder().layers = nn.ModuleList(expanded)
    _renumber(model, expanded, after)
    setattr(model.config, NEW_BLOCKS_KEY, new_indices)
    return new_indices


def _renumber(model, expanded: list[nn.Module], after: list[int]) -> None:
    """Attention modules know their layer index (for the KV cache); the config its layer count."""
    for index, block in enumerate(expanded):
        for module in block.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = index
    config = model.config
    types = getattr(config, "layer_types", None)
    if isinstance(types, list):  # per-layer attention kinds (sliding / full): a copy keeps its original's
        config.layer_types = [t for i, t in enumerate(types) for _ in range(2 if i in after else 1)]
    config.num_hidden_layers = len(expanded)


def train_only_new_blocks(model):
    """adapter.kind llama_pro: freeze every weight except the blocks the expansion added."""
    new = getattr(model.config, NEW_BLOCKS_KEY, None)
    if not new:
        raise UserError(
            "adapter.kind: llama_pro needs an expanded model (config field "
            f"{NEW_BLOCKS_KEY}): run `posttrain surgery expand MODEL --every K --out DIR` first"
        )
    layers = decoder_layers(model)
    if max(new) >= len(layers):
        raise UserError(f"{NEW_BLOCKS_KEY} {new} out of range for a model with {len(layers)} blocks")
    model.requires_grad_(False)
    for index in new:
        layers[index].requires_grad_(True)
    return model
