"""Model names and dtypes as a user writes them: 'tiny' (and 'tiny-test') name the project's
built-in models, built on first use; anything else is a directory or a hub id."""

from __future__ import annotations

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
TINY_NAMES = {"tiny": "default", "tiny-test": "test"}


def resolve_model_path(path: str) -> str:
    """'tiny' (and 'tiny-test') name the project's built-in models, built on first use."""
    if path in TINY_NAMES:
        from posttrain.model.tiny import ensure_tiny

        return str(ensure_tiny(TINY_NAMES[path]))
    return path
