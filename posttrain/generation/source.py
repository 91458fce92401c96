"""The one description of a model to sample from: where it runs (ModelSource: in-process hf, vllm,
or an OpenAI-compatible server), how a recipe role samples (ModelSpec = ModelSource + sampling),
and the settings of one sampling job (SamplingSettings, `posttrain sample`'s flags). Every caller
opens them through generation/factory.py, so `posttrain sample`, every `posttrain synth` method,
judges and RL rollouts sample with the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import Field

from posttrain.config.base import NonNegFloat, Positive, PositiveFloat, Section
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
        keep = (
            ("model", "backend", "dtype")
            if self.backend != "openai"
            else ("model", "backend", "base_url", "endpoint", "tokenizer")
        )
        return {k: getattr(self, k) for k in keep}


class Sampling(Section):
    temperature: NonNegFloat = 1.0  # 0 = greedy
    top_p: Annotated[float, Field(gt=0, le=1)] = 1.0
    max_new_tokens: Positive = 256


class ModelSpec(ModelSource):
    """A role's model (backends.ModelSource: where it runs) with how that role samples."""

    model: str | None = None  # model dir or hub id (hf, vllm); the served model's name (openai)
    backend: Literal["hf", "vllm", "openai"] = "openai"
    batch_size: Positive = 16  # hf/vllm generation batch
    temperature: NonNegFloat = 0.7
    top_p: Annotated[float, Field(gt=0, le=1)] = 1.0
    max_new_tokens: Positive = 512


def require_model(spec: ModelSpec | None, role: str, label: str = "recipe") -> ModelSpec:
    """The spec of a model the recipe cannot run without, or one line saying what is missing."""
    if spec is None or not spec.model:
        raise UserError(
            f"{label}: {role}.model: missing (the {role} model: a model dir or hub id for "
            f"backend hf/vllm, the served model's name for backend openai)"
        )
    if spec.backend == "openai" and not spec.base_url:
        raise UserError(
            f"{label}: {role}.base_url: missing (backend openai needs the server's URL, e.g. http://127.0.0.1:8000/v1)"
        )
    return spec


def model_identity(spec: ModelSpec) -> dict:
    """What a job's output depends on (the manifest's record of the model); no secrets."""
    keep = ("model", "backend", "base_url", "endpoint", "dtype", "temperature", "top_p", "max_new_tokens")
    return {k: v for k, v in spec.model_dump().items() if k in keep}


@dataclass
class SamplingSettings:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    stop: list[str] = field(default_factory=list)
    seed: int = 0
    logprobs: bool = True

    def check(self) -> None:
        if self.n < 1 or self.max_new_tokens < 1:
            raise UserError(f"--n and --max-new-tokens must be >= 1, got {self.n} and {self.max_new_tokens}")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise UserError(f"need temperature >= 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}")
