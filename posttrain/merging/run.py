"""Run a merge recipe: check every input before loading any weights, load the state dicts,
apply the operator (merging/operators.py), write a model directory transformers loads."""

from __future__ import annotations

from pathlib import Path

from posttrain.checkpoint.io import list_checkpoints
from posttrain.checkpoint.output_dir import check_output_dir, write_output_dir
from posttrain.checkpoint.weights import model_dir_writer, read_config, read_state_dict, tensor_shapes
from posttrain.errors import UserError
from posttrain.merging import operators as ops
from posttrain.merging.recipe import MergeRecipe


def input_dirs(recipe: MergeRecipe) -> list[Path]:
    """Every model directory the recipe reads; the first is the one whose config and tokenizer
    the output keeps (the target for instruction residuals, the base for task vectors)."""
    if recipe.method == "checkpoint_soup":
        found = list_checkpoints(Path(recipe.run_dir) / "checkpoints")
        if not found:
            raise UserError(f"{recipe.run_dir}: no complete checkpoints/step-* to soup")
        return found[-recipe.last :] if recipe.last else found
    models = [Path(m.path) for m in recipe.models]
    if recipe.method == "instruction_residual":
        return [Path(recipe.target), Path(recipe.base), *models]
    return ([Path(recipe.base)] if recipe.base else []) + models


def check_compatible(dirs: list[Path]) -> None:
    """Same architecture, same tensor names and shapes, same tokenizer: one line naming the first
    difference. Reads only configs, safetensors headers and tokenizers."""
    ref, ref_config, ref_shapes = dirs[0], read_config(dirs[0]), tensor_shapes(dirs[0])
    ref_vocab = _vocab(ref)
    for d in dirs[1:]:
        config = read_config(d)
        for key in ("model_type", "architectures"):
            if config.get(key) != ref_config.get(key):
                raise UserError(
                    f"{d}: {key} {config.get(key)} differs from {ref}'s {ref_config.get(key)}; "
                    f"only models of one architecture merge"
                )
        shapes = tensor_shapes(d)
        if set(shapes) != set(ref_shapes):
            name = sorted(set(shapes) ^ set(ref_shapes))[0]
            raise UserError(f"{d}: tensor {name} is in only one of {d} and {ref}; the models' architectures differ")
        for name, shape in shapes.items():
            if shape != ref_shapes[name]:
                raise UserError(
                    f"{d}: tensor {name} has shape {list(shape)}, {ref} has "
                    f"{list(ref_shapes[name])}; the models' shapes differ"
                )
        vocab = _vocab(d)
        if vocab is not None and ref_vocab is not None and vocab != ref_vocab:
            raise UserError(
                f"{d}: its tokenizer differs from {ref}'s ({len(vocab)} vs {len(ref_vocab)} "
                f"tokens or different ids); merged weights would mix token meanings"
            )
    if ref_vocab is None:
        raise UserError(f"{ref}: no tokenizer; the merged model takes its tokenizer from here")


def _vocab(model_dir: Path) -> dict | None:
    """The tokenizer's token -> id map, or None when the directory has no tokenizer files."""
    if not any((model_dir / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir)).get_vocab()


def merge_states(recipe: MergeRecipe, states: list[dict]) -> dict:
    """Apply the recipe's operator to the loaded state dicts (in input_dirs order)."""
    m, weights = recipe.method, [x.weight for x in recipe.models]
    if m == "checkpoint_soup":
        return ops.linear(states, [1.0] * len(states), normalize=True)
    if m == "linear":
        return ops.linear(states, weights, recipe.normalize)
    if m == "slerp":
        return ops.slerp(states[0], states[1], recipe.t)
    if m == "instruction_residual":
        target, base, instruct = states
        return ops.instruction_residual(target, instruct, base, recipe.scale)
    base, models = states[0], states[1:]
    if m == "task_arithmetic":
        return ops.task_arithmetic(base, models, weights, recipe.scale)
    if m == "ties":
        return ops.ties(base, models, weights, recipe.density, recipe.scale, recipe.normalize)
    return ops.dare(base, models, weights, recipe.density, recipe.seed, recipe.dare_combine, recipe.scale)


def run_merge(recipe: MergeRecipe, out: str | None = None, overwrite: bool = False) -> Path:
    out = out or recipe.output
    if not out:
        raise UserError("no output directory: set output: DIR in the recipe or pass --out DIR")
    dirs = input_dirs(recipe)
    inputs = [*dirs, recipe.run_dir] if recipe.run_dir else dirs
    check_output_dir(out, "merge", inputs, overwrite)  # before any weights are read
    check_compatible(dirs)
    states = [read_state_dict(d) for d in dirs]
    merged = merge_states(recipe, states)
    return write_output_dir(out, "merge", inputs, overwrite, model_dir_writer(merged, dirs[0], recipe.dtype))
