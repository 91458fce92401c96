"""Where a synthesis recipe's model lives (in-process hf, vllm, or an OpenAI-compatible server) and
how it samples: one recipe section each, opened through the generation backends of
posttrain/generation/sample.py (make_generation_backend), so `posttrain sample` and every
`posttrain synth` method sample with the same code.
"""

from __future__ import annotations

import argparse
from typing import Annotated, Literal

from pydantic import Field

from posttrain.config_base import NonNegFloat, Positive, PositiveFloat, Section
from posttrain.errors import UserError


class ModelSource(Section):
    """A model to sample from. hf/vllm load `model` (a directory, hub id or 'tiny'); openai sends
    requests to `base_url` naming `model` as the served model's name, and renders token-id prompts
    with `tokenizer` (default: `model`) when the endpoint is `completions`."""

    model: str = ""
    backend: Literal["hf", "vllm", "openai"] = "hf"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    base_url: str | None = None  # openai: e.g. http://127.0.0.1:8000/v1
    endpoint: Literal["chat", "completions"] = "chat"  # openai: messages or token ids
    tokenizer: str | None = None  # openai + completions: where the token ids' tokenizer is
    api_key_env: str | None = None  # openai: environment variable holding the key (never logged)
    concurrency: Positive = 8
    timeout: PositiveFloat = 60.0
    max_retries: Annotated[int, Field(ge=0)] = 4

    def identity(self) -> dict:
        """What the output depends on (the key's variable name is not, and is left out)."""
        keep = ("model", "backend", "dtype") if self.backend != "openai" else \
            ("model", "backend", "base_url", "endpoint", "tokenizer")
        return {k: getattr(self, k) for k in keep}


class Sampling(Section):
    temperature: NonNegFloat = 1.0  # 0 = greedy
    top_p: Annotated[float, Field(gt=0, le=1)] = 1.0
    max_new_tokens: Positive = 256


def open_backend(source: ModelSource, batch_size: int, seed: int, where: str = "recipe"):
    """The backend for `source`; a missing model or endpoint is a one-line error naming `where`."""
    if not source.model:
        raise UserError(f"{where}: no model given (set model=DIR, a hub id, or the served model's name)")
    if source.backend == "openai" and not source.base_url:
        raise UserError(f"{where}: backend openai needs base_url (e.g. http://127.0.0.1:8000/v1)")
    from posttrain.generation.sample import make_generation_backend

    args = argparse.Namespace(backend=source.backend, batch_size=batch_size, seed=seed, dtype=source.dtype,
                              base_url=source.base_url, endpoint=source.endpoint, api_key_env=source.api_key_env,
                              concurrency=source.concurrency, timeout=source.timeout,
                              max_retries=source.max_retries, tokenizer=source.tokenizer)
    return make_generation_backend(args, source.model)


def chat_tokenizer(backend, where: str):
    """The backend's tokenizer, which must carry its own chat template (an aligned model)."""
    tokenizer = getattr(backend, "tokenizer", None)
    if tokenizer is None:
        raise UserError(f"{where}: token-id prompts need the model's tokenizer: with backend openai use "
                        "endpoint=completions (and tokenizer=DIR when the served name is not a path)")
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(f"{where}: the tokenizer has no chat template: this method needs an aligned (chat) model")
    return tokenizer
