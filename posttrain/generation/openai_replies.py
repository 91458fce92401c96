"""What an OpenAI-compatible server must be asked for log-probs, and checking what it returns.

Servers differ in what they need before they return log-probs: OpenAI's chat endpoint takes
`logprobs: true` alone, llama.cpp's server (llama-cpp-python) returns none unless `top_logprobs`
is also set, and the completions endpoint takes `logprobs: N` (an integer: the top-N alternatives
per token; 1 is the smallest every server accepts). So both are always sent.

A reply's log-probs are used only when they are well-formed: a non-empty list with one finite
number <= 0 per token (a tiny positive rounding error is allowed). Anything else counts as "none
returned", which the caller warns about once and records, rather than storing a wrong sum.
"""

from __future__ import annotations

import math
from typing import Any


class HTTPFailure(Exception):
    """Every attempt of one request failed; the message says what each attempt got."""


# Some servers round log p = 0 to a small positive number.
_POSITIVE_TOLERANCE = 1e-4


def logprob_fields(chat: bool) -> dict[str, Any]:
    """The request fields that make a server return the sampled tokens' log-probs."""
    return {"logprobs": True, "top_logprobs": 1} if chat else {"logprobs": 1}


def token_logprob_values(logprobs: Any, chat: bool) -> list | None:
    """The per-token log-prob list of a choice's `logprobs`, or None when the field is absent."""
    if not isinstance(logprobs, dict):
        return None
    if chat:
        content = logprobs.get("content")
        if not isinstance(content, list):
            return None
        return [item.get("logprob") if isinstance(item, dict) else None for item in content]
    values = logprobs.get("token_logprobs")
    return values if isinstance(values, list) else None


def is_logprob(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value <= _POSITIVE_TOLERANCE
    )


def completion_logprob(choice: dict, chat: bool) -> tuple[float | None, str | None]:
    """(sum of the completion's token log-probs, None) or (None, why there is none):
    'missing' when the server sent none, 'malformed' when what it sent is not log-probs."""
    values = token_logprob_values(choice.get("logprobs"), chat)
    text = (choice.get("message") or {}).get("content") if chat else choice.get("text")
    if values == [] and not text:
        return 0.0, None  # an empty completion (end of text first): a sum over no tokens
    if not values:
        return None, "missing"
    if not all(is_logprob(v) for v in values):
        return None, "malformed"
    return float(sum(values)), None
