"""What every stage does before its loop: output directory, seeds, accelerator, model, tokenizer."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from accelerate import Accelerator
from accelerate.utils import set_seed

from posttrain.checkpoint.io import latest_checkpoint
from posttrain.config import Recipe, recipe_to_dict
from posttrain.data.plans import Layout
from posttrain.errors import UserError
from posttrain.model.load import load_model, load_tokenizer
from posttrain.train.distributed import make_accelerator

log = logging.getLogger(__name__)


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
    out_dir = output_dir_for(recipe, stage, output_dir)
    resume_from = check_output_dir(out_dir, resume)
    accelerator = make_accelerator(recipe)
    set_seed(recipe.seed)
    recipe = recipe.model_copy(update={"stage": stage, "output_dir": str(out_dir)})
    if accelerator.is_main_process:
        make_output_dir(out_dir)
        (out_dir / "config.yaml").write_text(yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False))
    tokenizer = load_tokenizer(recipe.model.path, recipe.model.revision, recipe.model.trust_remote_code)
    model = load_model(recipe.model, recipe.seed, recipe.adapter, resume_from=resume_from)
    layout = Layout(recipe.train.micro_batch_size, recipe.train.grad_accum_steps,
                    accelerator.num_processes, accelerator.process_index)
    return RunContext(recipe, out_dir, accelerator, model, tokenizer, layout, resume_from)


def check_output_dir(out_dir: Path, resume: bool) -> Path | None:
    """Never overwrite a run by accident: continuing one needs --resume."""
    has_run = (out_dir / "metrics.jsonl").exists() or (out_dir / "checkpoints").exists()
    if not resume:
        if has_run:
            raise UserError(f"{out_dir} already holds a run: pass --resume to continue it, "
                            "or choose another --output-dir")
        return None
    ckpt = latest_checkpoint(out_dir / "checkpoints")
    if ckpt is None:
        log.warning("--resume: no checkpoint in %s, starting from the beginning", out_dir)
    return ckpt


def make_output_dir(out_dir: Path) -> None:
    """Create the run directory, or say in one line why it cannot be: a file in the way (the
    directory itself or a parent), no permission, a read-only or virtual file system."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--output-dir {out_dir}: exists and is not a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except NotADirectoryError:
        raise UserError(f"--output-dir {out_dir}: a parent path is a file, not a directory") from None
    except OSError as err:
        raise UserError(f"--output-dir {out_dir}: cannot create it: {err.strerror or err}") from None
    if not os.access(out_dir, os.W_OK):
        raise UserError(f"--output-dir {out_dir}: not writable")
