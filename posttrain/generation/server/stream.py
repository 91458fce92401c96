"""Server-sent events for `stream: true`: `data: {chunk}` lines, one per token, then `data: [DONE]`.

The batch is generated before the first chunk is sent (HF generate runs the whole batch at once), so a
stream carries the same tokens as the non-streamed answer, split one token per chunk: a client that
streams gets the full answer, not a faster first token. Chat chunks are `chat.completion.chunk`
objects (the role first, then `delta.content` pieces, then the finish reason); text-completion chunks
are `text_completion` objects. With `stream_options.include_usage` every chunk has `"usage": null`
and a last chunk with no choices carries the usage.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

from posttrain.generation.server.responses import chat_logprobs, completion_logprobs, envelope, new_id


def sse(payload: dict | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n"


def text_pieces(tokenizer, ids: list[int], text: str) -> list[str]:
    """One piece of `text` per token, joined exactly to `text`: each token's piece is what decoding
    one more token adds to the decoded prefix (clipped to `text`, which a stop string may have cut)."""
    pieces, emitted = [], 0
    for k in range(1, len(ids) + 1):
        prefix = tokenizer.decode(ids[:k], skip_special_tokens=True)
        end = max(emitted, len(os.path.commonprefix([prefix, text])))
        pieces.append(text[emitted:end])
        emitted = end
    if pieces:
        pieces[-1] += text[emitted:]
    elif text:
        pieces.append(text)
    return pieces


def _token_slices(tokenizer, answer) -> Iterator[tuple[str, list | None]]:
    """(text piece, that token's detail list or None) for each completion token of an answer."""
    completion = answer.completion
    ids = list(completion.token_ids or ())
    pieces = text_pieces(tokenizer, ids, completion.text)
    details = answer.details[-len(ids) :] if answer.details is not None and ids else None
    for k, piece in enumerate(pieces):
        yield piece, (None if answer.details is None else details[k : k + 1] if details else [])


def chat_stream(tokenizer, model: str, answers: list, usage: dict | None) -> Iterator[str]:
    request_id, kind = new_id("chat"), "chat.completion.chunk"

    def chunk(index: int, delta: dict, finish: str | None = None, logprobs=None) -> str:
        choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        return sse(envelope(kind, model, [choice], None, request_id))

    for i, answer in enumerate(answers):
        yield chunk(i, {"role": "assistant", "content": ""})
        for piece, detail in _token_slices(tokenizer, answer):
            yield chunk(i, {"content": piece}, None, chat_logprobs(tokenizer, detail))
        yield chunk(i, {}, answer.completion.finish_reason)
    if usage is not None:
        yield sse(envelope(kind, model, [], usage, request_id))
    yield sse("[DONE]")


def completion_stream(
    tokenizer, model: str, answers: list, prompt_texts: list[str], echo: bool, usage: dict | None
) -> Iterator[str]:
    request_id, kind = new_id("text"), "text_completion"

    def chunk(index: int, text: str, finish: str | None = None, logprobs=None) -> str:
        choice = {"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish}
        return sse(envelope(kind, model, [choice], None, request_id) | {"usage": None})

    for i, (answer, prompt) in enumerate(zip(answers, prompt_texts)):
        offset = 0
        if echo:
            n_new = len(answer.completion.token_ids or ())
            prompt_details = None if answer.details is None else answer.details[: len(answer.details) - n_new]
            yield chunk(i, prompt, None, completion_logprobs(tokenizer, prompt_details))
            offset = len(prompt)
        for piece, detail in _token_slices(tokenizer, answer):
            yield chunk(i, piece, None, completion_logprobs(tokenizer, detail, offset))
            offset += len(piece)
        yield chunk(i, "", answer.completion.finish_reason)
    if usage is not None:
        yield sse(envelope(kind, model, [], usage, request_id))
    yield sse("[DONE]")
