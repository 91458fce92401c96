"""Open the model under evaluation: a model directory, a hub id in the local cache, 'tiny', or a
LoRA adapter directory (base from adapter_config.json plus the adapter, merged for speed)."""

from __future__ import annotations

from pathlib import Path

from posttrain.errors import UserError
from posttrain.model.adapters import adapter_base, is_adapter_dir
from posttrain.model.load import load_tokenizer, loading_errors
from posttrain.model.paths import DTYPES, resolve_model_path


def has_own_chat_template(tokenizer) -> bool:
    """An instruct model ships a chat template; a base model does not (ensure_chat_template would
    lend it Llama-3's, which is why this is asked before any prompt is built)."""
    return bool(getattr(tokenizer, "chat_template", None))


def load_model_and_tokenizer(path: str, dtype: str = "float32", device: str | None = None):
    """(model in eval mode, tokenizer) for a model or adapter directory."""
    import torch
    from transformers import AutoModelForCausalLM

    if dtype not in DTYPES:
        raise UserError(f"unknown dtype '{dtype}'; choose one of {sorted(DTYPES)}")
    path = resolve_model_path(path)
    adapter = is_adapter_dir(path)
    base_path = adapter_base(path) if adapter else path
    tokenizer = load_tokenizer(path if _has_tokenizer(path) or not adapter else base_path)
    with loading_errors(base_path, "the adapter's base model" if adapter else "model"):
        model = AutoModelForCausalLM.from_pretrained(base_path, dtype=DTYPES[dtype])
    if adapter:
        from posttrain.model.adapters import load_adapter

        model = load_adapter(model, path, trainable=False).merge_and_unload()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return model.to(device).eval(), tokenizer


def _has_tokenizer(path: str) -> bool:
    return any((Path(path) / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json"))
