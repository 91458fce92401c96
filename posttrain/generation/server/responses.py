"""Response bodies of `posttrain serve` in OpenAI's shapes: whole answers and the log-prob objects.

An Answer (batcher.py) holds a Completion and, when log-probs were asked for, per-token
(token id, log-prob, alternatives). Chat log-probs are `{"content": [{token, logprob, bytes,
top_logprobs}]}`; text-completion log-probs are the legacy parallel lists (tokens, token_logprobs,
top_logprobs, text_offset).
"""

from __future__ import annotations

import time
import uuid


def envelope(kind: str, model: str, choices: list, usage: dict | None, request_id: str | None = None) -> dict:
    body = {
        "id": request_id or new_id(kind),
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "choices": choices,
    }
    if usage is not None or kind.endswith(".chunk"):
        body["usage"] = usage
    return body


def new_id(kind: str) -> str:
    prefix = "chatcmpl" if kind.startswith("chat") else "cmpl"
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(prompt_lengths: list[int], answers: list) -> dict:
    """Each prompt's tokens count once however many completions (n) it got, as OpenAI counts them."""
    prompt = sum(prompt_lengths)
    completion = sum(a.completion.num_tokens for a in answers)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _piece(tokenizer, token: int) -> str:
    return tokenizer.decode([token])


def chat_logprobs(tokenizer, details: list | None) -> dict | None:
    if details is None:
        return None

    def entry(token: int, logprob: float) -> dict:
        text = _piece(tokenizer, token)
        return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}

    return {
        "content": [{**entry(t, lp), "top_logprobs": [entry(a, alp) for a, alp in alts]} for t, lp, alts in details]
    }


def completion_logprobs(tokenizer, details: list | None, offset: int = 0) -> dict | None:
    if details is None:
        return None
    tokens = [_piece(tokenizer, t) for t, _, _ in details]
    offsets, at = [], offset
    for token, _, _ in details:  # offsets into the returned text, where special tokens (BOS) are not
        offsets.append(at)
        at += len(tokenizer.decode([token], skip_special_tokens=True))
    return {
        "tokens": tokens,
        "token_logprobs": [lp for _, lp, _ in details],
        "top_logprobs": [
            None if lp is None else {_piece(tokenizer, a): alp for a, alp in alts} for _, lp, alts in details
        ],
        "text_offset": offsets,
    }


def chat_choices(tokenizer, answers: list) -> list[dict]:
    return [
        {
            "index": i,
            "message": {"role": "assistant", "content": a.completion.text},
            "finish_reason": a.completion.finish_reason,
            "logprobs": chat_logprobs(tokenizer, a.details),
        }
        for i, a in enumerate(answers)
    ]


def completion_choices(tokenizer, answers: list, prompt_texts: list[str], echo: bool) -> list[dict]:
    """Choice i answers prompt i // n (prompt_texts holds each completion's prompt, repeated n times)."""
    return [
        {
            "index": i,
            "text": (prompt if echo else "") + a.completion.text,
            "finish_reason": a.completion.finish_reason,
            "logprobs": completion_logprobs(tokenizer, a.details),
        }
        for i, (a, prompt) in enumerate(zip(answers, prompt_texts))
    ]
