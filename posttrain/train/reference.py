"""Reference log-probs for a run (DPO family, KTO, REBEL): which model is the reference, and the
on-disk cache around model/reference.py's one pass over the data."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from posttrain.config.recipe import ModelConfig, Recipe
from posttrain.data.cache import cached_tensors
from posttrain.model.load import load_model
from posttrain.model.paths import resolve_model_path
from posttrain.model.reference import precompute_reference_logps, units_fingerprint
from posttrain.train.setup import RunContext


def initial_policy(ctx: RunContext):
    """The model as it was before training: the policy itself on a fresh run (LoRA: the adapter
    is still zero), or freshly loaded when resuming a full fine-tuning run."""
    if ctx.resume_from is None or hasattr(ctx.model, "disable_adapter"):
        return ctx.model
    return load_model(ctx.recipe.model, ctx.recipe.seed)


def attach_reference_logps(
    ctx: RunContext, units: Sequence, collate: Callable, names: Sequence[str], fields: Sequence[str]
) -> None:
    """Fill unit.ref_logps from the cache, or compute them once with the reference: the recipe's
    `preference.reference`, else the initial policy (LoRA: the base with the adapter disabled)."""
    ref_path = ctx.recipe.preference.reference
    key = units_fingerprint(units, fields, model_identity(ref_path or ctx.recipe.model.path, ctx.recipe))
    batch, device = ctx.recipe.train.micro_batch_size, ctx.accelerator.device

    def compute() -> dict[str, torch.Tensor]:
        if ref_path:
            model = load_model(ModelConfig(path=ref_path, dtype=ctx.recipe.model.dtype)).to(device)
            precompute_reference_logps(model, units, collate, names, batch, device)
        elif hasattr(ctx.model, "disable_adapter"):
            with ctx.model.disable_adapter():
                precompute_reference_logps(ctx.model.to(device), units, collate, names, batch, device)
        else:
            precompute_reference_logps(initial_policy(ctx).to(device), units, collate, names, batch, device)
        return {k: torch.tensor([u.ref_logps[k] for u in units]) for k in units[0].ref_logps}

    for name, values in cached_tensors(key, compute).items():
        for unit, value in zip(units, values.tolist()):
            unit.ref_logps[name] = value


def model_identity(path: str, recipe: Recipe) -> str:
    """What the reference's log-probs depend on: the weights' location and, for a local
    directory, the size and time of its weight files."""
    resolved = Path(resolve_model_path(path))
    stamp = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(resolved.glob("*.safetensors"))]
    return repr(
        (
            str(resolved),
            recipe.model.revision,
            recipe.model.dtype,
            recipe.model.init,
            recipe.seed if recipe.model.init == "random" else None,
            stamp,
        )
    )
