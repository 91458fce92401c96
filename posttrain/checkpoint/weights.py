"""Model directories as state dicts, for weight operators (merging, quantisation): read tensor
names and shapes without loading, read the weights, write a directory transformers loads.

Only safetensors are read (one file or a sharded set); nothing is unpickled.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from posttrain.checkpoint.io import write_dir_atomically
from posttrain.errors import UserError

WEIGHTS_FILE = "model.safetensors"
# the old weight index, and the marker of the command that wrote the reference (output_dir.py)
_NOT_COPIED = ("model.safetensors.index.json", ".posttrain-output.json")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def weight_files(model_dir: str | Path) -> list[Path]:
    """The safetensors files of a model directory; a one-line error when it has none."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise UserError(f"{model_dir}: model directory not found")
    if (model_dir / "adapter_config.json").is_file():
        raise UserError(
            f"{model_dir}: an adapter, not a full model; fold it first with "
            f"`posttrain merge-lora {model_dir} --out DIR`"
        )
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise UserError(f"{model_dir}: no *.safetensors weights")
    return files


def tensor_shapes(model_dir: str | Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from the safetensors headers (no weights are read)."""
    shapes = {}
    for f in weight_files(model_dir):
        with safe_open(str(f), framework="pt") as handle:
            for name in handle.keys():
                shapes[name] = tuple(handle.get_slice(name).get_shape())
    return shapes


def read_state_dict(model_dir: str | Path) -> dict[str, torch.Tensor]:
    state = {}
    for f in weight_files(model_dir):
        with safe_open(str(f), framework="pt") as handle:
            for name in handle.keys():
                state[name] = handle.get_tensor(name)
    return state


def read_config(model_dir: str | Path) -> dict:
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise UserError(f"{model_dir}: no config.json (not a Hugging Face model directory)")
    return json.loads(path.read_text())


def write_model_dir(
    state: dict[str, torch.Tensor],
    reference_dir: str | Path,
    out: str | Path,
    dtype: str = "float32",
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Write `state` as out/model.safetensors beside reference_dir's config, tokenizer and other
    non-weight files (config's dtype set to `dtype`) and `extra_files` (name -> text), atomically."""
    return write_dir_atomically(out, model_dir_writer(state, reference_dir, dtype, extra_files))


def model_dir_writer(
    state: dict[str, torch.Tensor],
    reference_dir: str | Path,
    dtype: str = "float32",
    extra_files: dict[str, str] | None = None,
):
    """write(tmp_dir) for write_model_dir (or checkpoint/output_dir.write_output_dir)."""
    reference_dir = Path(reference_dir)

    def write(tmp: Path) -> None:
        for f in reference_dir.iterdir():
            if f.is_file() and not f.name.endswith(".safetensors") and f.name not in _NOT_COPIED:
                shutil.copy2(f, tmp / f.name)
        config = {**read_config(reference_dir), "dtype": dtype}
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        tensors = {k: (v.to(DTYPES[dtype]) if v.is_floating_point() else v).contiguous() for k, v in state.items()}
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)

    return write
