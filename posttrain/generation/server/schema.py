"""The request bodies `posttrain serve` accepts, checked against OpenAI's ranges before any generation.

Pydantic refuses wrong types, unknown fields and out-of-range numbers; the checks that span fields
(top_logprobs needs logprobs, n times the number of prompts) are model validators. Every refusal
becomes a 400 OpenAI error object naming the field (errors.py). Fields the official client may
send that change nothing here (user, metadata, store, service_tier) are accepted and ignored; fields
that would change the answer and are not implemented (tools, logit_bias, penalties, best_of,
suffix, json_object response_format) are refused rather than silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_N = 128  # completions in one request (n times the number of prompts)
MAX_STOP = 4  # stop strings, as OpenAI allows
MAX_TOP_LOGPROBS = 20
DEFAULT_MAX_TOKENS = 256


class Unsupported(ValueError):
    """A field the server understands but does not implement: refused with the field's name."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: str


class Message(BaseModel):
    """A chat turn; content as a string or a list of text parts (other part types: 400)."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[dict[str, Any]]
    name: str | None = None

    @model_validator(mode="after")
    def _text_parts_only(self) -> Message:
        if isinstance(self.content, list):
            for part in self.content:
                kind = part.get("type")
                if kind != "text":
                    raise ValueError(f"content part type {kind!r} is not supported (text parts only)")
                TextPart.model_validate(part)
        return self

    def text(self) -> str:
        """The content as one string: text parts joined as OpenAI joins them (no separator)."""
        if isinstance(self.content, str):
            return self.content
        return "".join(part["text"] for part in self.content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text", "json_object", "json_schema"]


Stop = Annotated[list[str], Field(max_length=MAX_STOP)]


class _Common(BaseModel):
    """Fields shared by both endpoints, with OpenAI's ranges."""

    model_config = ConfigDict(extra="forbid")
    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0, le=2)
    top_p: float = Field(default=1.0, ge=0, le=1)
    n: int = Field(default=1, ge=1, le=MAX_N)
    stop: str | Stop | None = None
    seed: int | None = None  # any integer: reduced to the generator's range by seed_value
    stream: bool = False
    stream_options: StreamOptions | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    user: str | None = None
    metadata: dict[str, Any] | None = None
    store: bool | None = None
    service_tier: str | None = None

    @model_validator(mode="after")
    def _common_checks(self) -> _Common:
        if self.stream_options is not None and not self.stream:
            raise Unsupported("stream_options", "stream_options is only allowed when stream is true")
        for name in ("frequency_penalty", "presence_penalty"):
            if getattr(self, name) not in (None, 0):
                raise Unsupported(name, f"{name} is not supported (only 0)")
        if self.logit_bias:
            raise Unsupported("logit_bias", "logit_bias is not supported")
        return self

    def stops(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())

    def greedy(self) -> bool:
        """top_p 0 keeps only the likeliest token: greedy decoding, as temperature 0."""
        return self.temperature == 0 or self.top_p == 0

    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


class ChatRequest(_Common):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)
    response_format: ResponseFormat | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None

    @model_validator(mode="after")
    def _chat_checks(self) -> ChatRequest:
        if self.top_logprobs is not None and not self.logprobs:
            raise Unsupported("top_logprobs", "top_logprobs requires logprobs to be true")
        if self.response_format is not None and self.response_format.type != "text":
            raise Unsupported(
                "response_format",
                f"response_format {self.response_format.type!r} is not "
                "supported: this server does not constrain output to JSON (use 'text')",
            )
        if self.tools or self.tool_choice not in (None, "none"):
            raise Unsupported("tools", "tools and tool_choice are not supported")
        return self

    def new_tokens(self) -> int:
        return self.max_completion_tokens or self.max_tokens or DEFAULT_MAX_TOKENS

    def top_k(self) -> int | None:
        """How many alternatives per token, or None when no log-probs were asked for."""
        return (self.top_logprobs or 0) if self.logprobs else None


TokenIds = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]
Prompt = str | Annotated[list[str], Field(min_length=1)] | TokenIds | Annotated[list[TokenIds], Field(min_length=1)]


class CompletionRequest(_Common):
    prompt: Prompt
    logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)
    echo: bool = False
    best_of: int | None = None
    suffix: str | None = None

    @model_validator(mode="after")
    def _completion_checks(self) -> CompletionRequest:
        if self.best_of not in (None, 1) and self.best_of != self.n:
            raise Unsupported("best_of", "best_of other than n is not supported")
        if self.suffix:
            raise Unsupported("suffix", "suffix (insertion) is not supported")
        if len(self.prompts()) * self.n > MAX_N:
            raise Unsupported(
                "n", f"n times the number of prompts must be <= {MAX_N}, got {self.n} x {len(self.prompts())}"
            )
        return self

    def prompts(self) -> list[str | list[int]]:
        """Each prompt as text or token ids: a string, a list of strings, one id list or several."""
        if isinstance(self.prompt, str):
            return [self.prompt]
        if isinstance(self.prompt[0], int):
            return [self.prompt]
        return list(self.prompt)

    def new_tokens(self) -> int:
        return self.max_tokens or DEFAULT_MAX_TOKENS

    def top_k(self) -> int | None:
        return self.logprobs


def seed_value(seed: int | None) -> int:
    """Any integer as a generator seed in [0, 2**63): negative and huge seeds are valid requests."""
    return 0 if seed is None else seed % (1 << 63)
