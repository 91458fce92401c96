"""Loading a model for a surgery command, as every stage loads one (one-line errors)."""

from __future__ import annotations


def load_for_surgery(model: str, dtype: str = "float32"):
    """(model, tokenizer, resolved path), loaded as every stage loads a model (one-line errors)."""
    from posttrain.config.recipe import ModelConfig
    from posttrain.model.load import instantiate, load_tokenizer

    loaded = instantiate(ModelConfig(path=model, dtype=dtype))
    return loaded.model, load_tokenizer(loaded.path), loaded.path
