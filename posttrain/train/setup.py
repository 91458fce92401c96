"""What every stage does before its loop: output directory, seeds, accelerator, model, tokenizer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from accelerate import Accelerator
from accelerate.utils import set_seed

from posttrain.checkpoint.io import write_text_atomically
from posttrain.config.recipe import Recipe, recipe_to_dict
from posttrain.data.plans import Layout
from posttrain.model.load import load_model, load_tokenizer
from posttrain.train.distributed import make_accelerator
from posttrain.train.lock import lock_output_dir
from posttrain.train.resume import check_output_dir


@dataclass
class RunContext:
    recipe: Recipe
    out_dir: Path
    accelerator: Accelerator
    model: Any
    tokenizer: Any
    layout: Layout
    resume_from: Path | None


def output_dir_for(recipe: Recipe, stage: str, override: str | None) -> Path:
    return Path(override or recipe.output_dir or f"runs/{stage}")


def start_run(recipe: Recipe, stage: str, output_dir: str | None, resume: bool) -> RunContext:
    recipe, out_dir, accelerator, resume_from = open_output_dir(recipe, stage, output_dir, resume)
    tokenizer = load_tokenizer(recipe.model.path, recipe.model.revision, recipe.model.trust_remote_code)
    model = load_model(recipe.model, recipe.seed, recipe.adapter, resume_from=resume_from)
    return RunContext(recipe, out_dir, accelerator, model, tokenizer, run_layout(recipe, accelerator), resume_from)


def open_output_dir(
    recipe: Recipe, stage: str, output_dir: str | None, resume: bool
) -> tuple[Recipe, Path, Accelerator, Path | None]:
    """Lock the output directory (main process), check what --resume may continue, seed, and
    only then record the recipe in config.yaml: a refused run leaves the directory as it was.
    Returns (recipe with stage and output_dir set, out_dir, accelerator, checkpoint or None)."""
    out_dir = output_dir_for(recipe, stage, output_dir)
    accelerator = make_accelerator(recipe)
    recipe = recipe.model_copy(update={"stage": stage, "output_dir": str(out_dir)})
    if accelerator.is_main_process:
        lock_output_dir(out_dir)
    resume_from = check_output_dir(out_dir, resume, recipe_to_dict(recipe), accelerator.num_processes)
    set_seed(recipe.seed)
    if accelerator.is_main_process:
        write_text_atomically(out_dir / "config.yaml", yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False))
    return recipe, out_dir, accelerator, resume_from


def run_layout(recipe: Recipe, accelerator: Accelerator) -> Layout:
    return Layout(
        recipe.train.micro_batch_size,
        recipe.train.grad_accum_steps,
        accelerator.num_processes,
        accelerator.process_index,
    )
