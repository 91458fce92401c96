"""Atomic checkpoints: a directory under its final name is always complete.

Layout of root/step-00001234/:
    model weights + config   model.save_pretrained (for a peft PeftModel: the adapter only)
    tokenizer files          tokenizer.save_pretrained
    recipe.yaml              the recipe the run was started with
    trainer_state.json       step, tokens seen, data position ... (whatever the trainer passes)
    optim.pt                 optimizer, scheduler and RNG state (torch.load(weights_only=True) safe)
    auxiliary.safetensors    modules trained beside the model (PPO's critic or value head), if any

Every directory is written under root/.tmp-<name> and renamed into place with os.replace, which is
atomic on one filesystem; a killed run leaves at most a .tmp-* directory, removed by the next save.

Callers pass the unwrapped model (accelerate's unwrap_model is their job) and call these functions on
the main process only; model weights are loaded back by the caller with from_pretrained(ckpt_dir).
"""

import errno
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError

from posttrain.checkpoint.permissions import apply_umask
from posttrain.checkpoint.rng_state import capture_rng_state, restore_rng_state
from posttrain.errors import UserError

STEP_DIR_PATTERN = re.compile(r"^step-(\d{8,})$")
TMP_PREFIX = ".tmp-"
TRAINER_STATE_FILE = "trainer_state.json"
OPTIM_FILE = "optim.pt"
RECIPE_FILE = "recipe.yaml"
FINAL_DIR = "final"
AUXILIARY_FILE = "auxiliary.safetensors"


def save_checkpoint(
    root: str | os.PathLike,
    step: int,
    model,
    tokenizer,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    trainer_state: dict[str, Any],
    recipe: dict[str, Any],
    keep_last: int | None = None,
    model_state: dict[str, torch.Tensor] | None = None,
    auxiliary_state: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write root/step-{step:08d} atomically, then delete the oldest step dirs beyond `keep_last`.

    Main process only. `trainer_state` must be JSON-serialisable; its "step" is set to `step`.
    `tokenizer` may be None (nothing to save, e.g. in tests). `model_state` replaces the model's own
    state dict (full weights gathered from sharded processes); `auxiliary_state` holds the weights
    of modules trained beside it (auxiliary.safetensors). Returns the checkpoint directory.
    """
    if keep_last is not None and keep_last < 1:
        raise UserError(f"keep_last must be >= 1 (or unset to keep every checkpoint), got {keep_last}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp_dirs(root)
    final_dir = root / f"step-{step:08d}"

    def write(tmp_dir: Path) -> None:
        _save_model_and_tokenizer(tmp_dir, model, tokenizer, model_state)
        _save_auxiliary(tmp_dir, auxiliary_state)
        (tmp_dir / RECIPE_FILE).write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
        state = {**trainer_state, "step": step}
        (tmp_dir / TRAINER_STATE_FILE).write_text(json.dumps(state, indent=2), encoding="utf-8")
        optim_state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
        _torch_save({**optim_state, "rng": capture_rng_state()}, tmp_dir / OPTIM_FILE)

    _write_dir_atomically(final_dir, write)
    if keep_last is not None:
        for old_dir in list_checkpoints(root)[:-keep_last]:
            _remove_dir_atomically(old_dir)
    return final_dir


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    """The complete step-* directory with the highest step, or None when there is none (fresh run)."""
    checkpoints = list_checkpoints(root)
    return checkpoints[-1] if checkpoints else None


def list_checkpoints(root: str | os.PathLike) -> list[Path]:
    """Complete step-* directories under root, oldest step first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        match = STEP_DIR_PATTERN.match(entry.name)
        if match and _is_complete(entry):
            found.append((int(match.group(1)), entry))
    return [path for _, path in sorted(found)]


def load_training_state(
    ckpt_dir: str | os.PathLike,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> dict[str, Any]:
    """Restore optimizer, scheduler and RNG state from ckpt_dir; return its trainer_state.json dict.

    Build the optimizer and scheduler exactly as the saving run did (same model, same trainable
    parameters, same schedule) before calling this; the model weights are the caller's to load.
    """
    ckpt_dir = Path(ckpt_dir)
    if not _is_complete(ckpt_dir):
        raise UserError(f"{ckpt_dir}: not a complete checkpoint (needs {TRAINER_STATE_FILE} and {OPTIM_FILE})")
    saved = torch.load(ckpt_dir / OPTIM_FILE, map_location="cpu", weights_only=True)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    restore_rng_state(saved["rng"])
    return json.loads((ckpt_dir / TRAINER_STATE_FILE).read_text(encoding="utf-8"))


def save_final(
    out_dir: str | os.PathLike, model, tokenizer, model_state: dict | None = None, auxiliary_state: dict | None = None
) -> Path:
    """Write out_dir/final (main process only), replacing an existing one; never seen half-written.

    A plain model gives a directory AutoModelForCausalLM.from_pretrained loads as is (safetensors).
    A peft model gives its adapter (what LoRA runs train): transformers loads it too when peft is
    installed (adapter_config.json names the base), and `posttrain merge-lora` makes it a plain model.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp_dirs(out_dir)
    return save_model_dir(out_dir / FINAL_DIR, model, tokenizer, model_state, auxiliary_state)


def save_model_dir(
    directory: str | os.PathLike, model, tokenizer, model_state: dict | None = None, auxiliary_state: dict | None = None
) -> Path:
    """Atomically write model (or adapter) and tokenizer (and auxiliary weights) into `directory`."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    _write_dir_atomically(directory, model_writer(model, tokenizer, model_state, auxiliary_state))
    return directory


def model_writer(model, tokenizer, model_state: dict | None = None, auxiliary_state: dict | None = None):
    """write(tmp_dir) saving model (or adapter), tokenizer and auxiliary weights (for write_dir_atomically)."""

    def write(tmp_dir: Path) -> None:
        _save_model_and_tokenizer(tmp_dir, model, tokenizer, model_state)
        _save_auxiliary(tmp_dir, auxiliary_state)

    return write


def write_dir_atomically(directory: str | os.PathLike, write) -> Path:
    """Run write(tmp_dir) and publish tmp_dir under `directory` in one rename (for tools that write
    model files themselves: merge, quantize)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    _write_dir_atomically(directory, write)
    return directory


def _save_auxiliary(directory: Path, state: dict[str, torch.Tensor] | None) -> None:
    if state:
        from safetensors.torch import save_file

        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, directory / AUXILIARY_FILE)


def load_auxiliary_state(directory: str | os.PathLike) -> dict[str, torch.Tensor] | None:
    """The auxiliary weights a checkpoint holds (save_checkpoint's auxiliary_state), else None."""
    path = Path(directory) / AUXILIARY_FILE
    if not path.is_file():
        return None
    from safetensors.torch import load_file

    return load_file(path)


def remove_stale_tmp_dirs(root: Path) -> None:
    """Delete .tmp-* directories that a killed save left behind (only the main process saves, so none is live)."""
    for entry in root.glob(TMP_PREFIX + "*"):
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)


def _save_model_and_tokenizer(directory: Path, model, tokenizer, model_state: dict | None = None) -> None:
    # transformers >= 5 and peft both write safetensors by default; nothing to ask for.
    if model_state is None:
        model.save_pretrained(directory)
    else:
        model.save_pretrained(directory, state_dict=model_state)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)


def write_text_atomically(path: Path, text: str) -> None:
    """Write `path` through a temp file and a rename (readable per the umask, like any file);
    a write error is one line naming the path."""
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise UserError(f"{err.filename or path}: cannot write: {err.strerror}") from None


def _torch_save(obj, path: Path) -> None:
    # torch.save reports a failed write (disk full) as a RuntimeError without the path.
    try:
        torch.save(obj, path)
    except RuntimeError as err:
        raise OSError(errno.EIO, f"write failed ({err})", str(path)) from None


def _is_peft_model(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # without peft installed there can be no peft model
        return False
    return isinstance(model, PeftModel)


def _is_complete(ckpt_dir: Path) -> bool:
    return (ckpt_dir / TRAINER_STATE_FILE).is_file() and (ckpt_dir / OPTIM_FILE).is_file()


def _write_dir_atomically(final_dir: Path, write) -> None:
    """Run write(tmp_dir) on a fresh temp dir beside final_dir, then swap it in under final_dir's name.

    os.replace cannot rename over a non-empty directory, so an existing final_dir is first moved aside
    to a .tmp-* name (deleted afterwards, or by the next save if we are killed in between).
    A write error (disk full, no permission) is one line naming the path; what was under
    final_dir's name before is left as it was.
    """
    tmp_dir = final_dir.with_name(f"{TMP_PREFIX}{final_dir.name}")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    try:
        tmp_dir.mkdir()
        write(tmp_dir)
        apply_umask(tmp_dir)  # transformers writes model.safetensors 0600
    except BaseException as err:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        if isinstance(err, OSError):
            raise UserError(
                f"{err.filename or tmp_dir}: cannot write {final_dir}: {err.strerror}; "
                f"nothing under that name was changed"
            ) from None
        if isinstance(err, SafetensorError):  # how safetensors reports a full disk (os error 28)
            raise UserError(
                f"{tmp_dir}: cannot write {final_dir}: {str(err).splitlines()[0]}; nothing under that name was changed"
            ) from None
        raise
    if final_dir.exists():
        _remove_dir_atomically(final_dir)
    os.replace(tmp_dir, final_dir)


def _remove_dir_atomically(directory: Path) -> None:
    """Rename to a .tmp-* name first, so a crash mid-delete never leaves a partial dir under a real name."""
    doomed = directory.with_name(f"{TMP_PREFIX}old-{directory.name}")
    shutil.rmtree(doomed, ignore_errors=True)
    os.replace(directory, doomed)
    shutil.rmtree(doomed)
