"""What `--resume` accepts: which checkpoint it continues, and which recipe changes it allows.

A resumed run repeats the uninterrupted one exactly only if everything that decides the data
order, the batches, the model and the loss is unchanged, so changes there are refused. Settings
that only steer the optimizer or the bookkeeping are applied from the new recipe (the run is
then a deliberate continuation with new settings, no longer an exact repeat), and said so.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import yaml

from posttrain.checkpoint.io import (
    FINAL_DIR,
    RECIPE_FILE,
    TRAINER_STATE_FILE,
    latest_checkpoint,
)
from posttrain.errors import UserError

log = logging.getLogger(__name__)

# Dotted keys (or section prefixes ending in '.') applied from the new recipe on resume.
APPLIED = (
    "train.micro_batch_size",
    "train.grad_accum_steps",  # the global batch is checked instead
    "train.lr",
    "train.weight_decay",
    "train.betas",
    "train.schedule",
    "train.warmup_steps",
    "train.warmup_ratio",
    "train.min_lr_ratio",
    "train.decay_ratio",
    "train.max_grad_norm",
    "train.max_steps",
    "train.epochs",
    "train.log_every",
    "train.eval_every",
    "train.save_every",
    "train.keep_last",
    "train.logprob_chunk_size",
    "train.mixed_precision",
    "train.distributed",
    "train.on_nonfinite",
    "model.gradient_checkpointing",
    "model.lean_layers",
    "model.attn_implementation",
    "grpo.samples_every",
    "grpo.generation_batch_size",
    "grpo.backend",
    "grpo.vllm_gpu_memory_utilization",
    "eval.",
    "log.",
)
IGNORED = ("output_dir",)  # the same directory may be named by another path


def check_output_dir(out_dir: Path, resume: bool, recipe: dict[str, Any], processes: int = 1) -> Path | None:
    """Never overwrite a run by accident: continuing one needs --resume, a finished run without a
    checkpoint cannot be continued, and a changed recipe must keep the continuation exact.
    `processes` is this launch's number of training processes. Returns the checkpoint to resume
    from (None: a fresh start)."""
    has_run = (out_dir / "metrics.jsonl").exists() or (out_dir / "checkpoints").exists()
    if not resume:
        if has_run:
            raise UserError(
                f"{out_dir} already holds a run: pass --resume to continue it, or choose another --output-dir"
            )
        return None
    ckpt = latest_checkpoint(out_dir / "checkpoints")
    if ckpt is None:
        if (out_dir / FINAL_DIR).exists():
            raise UserError(
                f"{out_dir} holds a finished run ({FINAL_DIR}/) and no checkpoint to "
                f"continue from: --resume would retrain it from scratch and replace "
                f"{FINAL_DIR}/; to do that, delete {out_dir / FINAL_DIR} first"
            )
        log.warning("--resume: no checkpoint in %s, starting from the beginning", out_dir)
        return None
    stored = yaml.safe_load((ckpt / RECIPE_FILE).read_text(encoding="utf-8")) or {}
    saved = json.loads((ckpt / TRAINER_STATE_FILE).read_text(encoding="utf-8"))
    check_recipe_changes(stored, recipe, ckpt, saved.get("num_processes", processes), processes)
    return ckpt


def check_recipe_changes(
    stored: dict[str, Any], new: dict[str, Any], ckpt: Path, old_processes: int = 1, new_processes: int = 1
) -> None:
    """Refuse changes that break an exact continuation; report the applied ones in one line."""
    refused, applied = recipe_changes(stored, new)
    old_batch, new_batch = _global_batch(stored, old_processes), _global_batch(new, new_processes)
    # A checkpoint moves between process counts when the global batch holds. GRPO's batch is
    # grpo.prompts_per_step x group_size (compared above); micro_batch_size only cuts its rows.
    if old_batch[0] != new_batch[0] and new.get("stage") != "grpo":
        refused.append(
            f"global batch (micro_batch_size x grad_accum_steps x processes): "
            f"{old_batch[1]}={old_batch[0]} -> {new_batch[1]}={new_batch[0]}"
        )
    if refused:
        raise UserError(
            f"--resume: the recipe differs from {ckpt.name}'s in what decides the data, "
            f"batches, model or loss: {'; '.join(refused)} (restore these, or start a "
            "new run in another --output-dir)"
        )
    if applied:
        log.warning("--resume: applying the new recipe's %s (no longer an exact continuation)", "; ".join(applied))


def recipe_changes(stored: dict[str, Any], new: dict[str, Any]) -> tuple[list[str], list[str]]:
    """('key: old -> new' refused, same applied) over keys present in both recipes (a key added to
    the schema since the checkpoint was written is not a change)."""
    old_flat, new_flat = _flatten(stored), _flatten(new)
    refused, applied = [], []
    for key in sorted(old_flat.keys() & new_flat.keys()):
        old, value = old_flat[key], new_flat[key]
        if old == value or key in IGNORED:
            continue
        line = f"{key}: {old!r} -> {value!r}"
        (applied if _is_applied(key) else refused).append(line)
    return refused, applied


def _global_batch(recipe: dict[str, Any], processes: int) -> tuple[int, str]:
    train = recipe.get("train", {})
    micro, accum = train.get("micro_batch_size", 0), train.get("grad_accum_steps", 0)
    return micro * accum * processes, f"{micro}x{accum}x{processes}"


def _is_applied(key: str) -> bool:
    return any(key == p or (p.endswith(".") and key.startswith(p)) for p in APPLIED)


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted leaves of nested mappings; lists are leaves (a changed source list is one change)."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flatten(value, f"{prefix}{key}." if isinstance(value, dict) else f"{prefix}{key}"))
    return out
