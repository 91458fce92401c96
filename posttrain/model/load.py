"""Models and tokenizers in and out through the Hugging Face API, for hub ids, local directories
and the project's default tiny model alike (the tiny model is a saved directory too)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from posttrain.config import ModelConfig
from posttrain.errors import UserError

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
TINY_NAMES = {"tiny": "default", "tiny-test": "test"}


def resolve_model_path(path: str) -> str:
    """'tiny' (and 'tiny-test') name the project's built-in models, built on first use."""
    if path in TINY_NAMES:
        from posttrain.model.tiny import ensure_tiny

        return str(ensure_tiny(TINY_NAMES[path]))
    return path


def _cannot_load(path: str, err: Exception) -> UserError:
    where = "local directory" if Path(path).exists() else "hub id (offline, or not in the local cache)"
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return UserError(f"cannot load model '{path}' as a {where}: {first}")


def load_tokenizer(path: str, revision: str | None = None, trust_remote_code: bool = False):
    path = resolve_model_path(path)
    try:
        tok = AutoTokenizer.from_pretrained(path, revision=revision, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise _cannot_load(path, err) from None
    if tok.pad_token is None:
        # Llama-3 ships without a pad token; padding positions never carry a loss or attention.
        reserved = "<|finetune_right_pad_id|>"
        tok.pad_token = reserved if reserved in tok.get_vocab() else tok.eos_token
    return tok


def load_model(cfg: ModelConfig, seed: int = 0, path_override: str | Path | None = None):
    """Pretrained weights, or (init: random) fresh weights from the path's config under `seed`.
    `path_override` loads a checkpoint of this run instead (resume)."""
    path = str(path_override) if path_override else resolve_model_path(cfg.path)
    kwargs = dict(dtype=DTYPES[cfg.dtype], attn_implementation=cfg.attn_implementation,
                  trust_remote_code=cfg.trust_remote_code)
    try:
        if cfg.init == "random" and path_override is None:
            config = AutoConfig.from_pretrained(path, revision=cfg.revision,
                                                trust_remote_code=cfg.trust_remote_code)
            torch.manual_seed(seed)
            model = AutoModelForCausalLM.from_config(config, **kwargs)
        else:
            model = AutoModelForCausalLM.from_pretrained(path, revision=cfg.revision, **kwargs)
    except (OSError, ValueError) as err:
        raise _cannot_load(path, err) from None
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def context_length(model) -> int:
    return int(getattr(model.config, "max_position_embeddings", 2048))
