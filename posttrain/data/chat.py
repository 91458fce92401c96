"""Chat formatting and loss masks.

Conversations are rendered with the tokenizer's own chat template and tokenized once, with no extra
special tokens, so the model sees exactly what it will see at inference. Loss masks come from token
boundaries of prefix renderings (never from searching strings), so they are exact for any template
that is prefix-stable, and a template that is not is rejected instead of silently mis-masked.
"""

from __future__ import annotations

import logging

from posttrain.errors import UserError

log = logging.getLogger(__name__)

IGNORE_INDEX = -100  # label value that torch's cross-entropy skips

# The chat template of meta-llama/Meta-Llama-3-8B-Instruct, verbatim (Llama-3, not 3.1).
LLAMA3_CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

_warned_template = False


def ensure_chat_template(tokenizer) -> None:
    """Give a tokenizer without a chat template (base models) the Llama-3 one; log that once."""
    global _warned_template
    if getattr(tokenizer, "chat_template", None):
        return
    tokenizer.chat_template = LLAMA3_CHAT_TEMPLATE
    if not _warned_template:
        log.warning("tokenizer has no chat template; using the Llama-3 chat template")
        _warned_template = True


def render_ids(tokenizer, messages: list[dict], add_generation_prompt: bool) -> list[int]:
    """Render with the tokenizer's template, tokenize without added specials, ensure exactly one BOS."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    bos = tokenizer.bos_token_id
    if bos is not None and (not ids or ids[0] != bos):
        ids.insert(0, bos)  # the template did not emit BOS: add it once, as inference would
    return ids


def _check_prefix(prefix: list[int], full: list[int]) -> None:
    """Masks are token offsets into the full rendering, valid only if each prefix renders identically."""
    if full[: len(prefix)] != prefix:
        raise UserError(
            "the chat template is not prefix-stable (rendering a conversation prefix does not "
            "produce a token prefix of the whole conversation), so assistant loss masks cannot be computed"
        )


def _span_end(tokenizer, prefix: list[dict], full_ids: list[int], add_generation_prompt: bool) -> int:
    """Token length of a prefix's rendering, checked to be a token prefix of the full conversation."""
    ids = render_ids(tokenizer, prefix, add_generation_prompt)
    _check_prefix(ids, full_ids)
    return len(ids)


def tokenize_conversation(tokenizer, messages: list[dict]) -> tuple[list[int], list[int]]:
    """(input_ids, labels) for a conversation; labels are -100 except every assistant turn's tokens
    (an assistant turn with `weight: 0` is context only, as in OpenAI's fine-tuning format).

    An assistant turn's span runs from the end of the generation prompt before it to the end of the
    rendering that includes it, so its end-of-turn token (<|eot_id|> for Llama-3) is trained too.
    """
    ensure_chat_template(tokenizer)
    if messages and messages[0]["role"] == "assistant":
        # Its span would start at the generation prompt of an empty conversation, which cannot be rendered.
        raise UserError("a conversation cannot start with an assistant message; put a user or system turn first")
    input_ids = render_ids(tokenizer, messages, add_generation_prompt=False)
    labels = [IGNORE_INDEX] * len(input_ids)
    for i, message in enumerate(messages):
        if message["role"] != "assistant" or message.get("weight", 1) == 0:
            continue
        start = _span_end(tokenizer, messages[:i], input_ids, add_generation_prompt=True)
        is_last = i == len(messages) - 1  # then its rendering is the whole conversation: skip a render
        end = len(input_ids) if is_last else _span_end(tokenizer, messages[: i + 1], input_ids, False)
        labels[start:end] = input_ids[start:end]
    return input_ids, labels


def tokenize_prompt(tokenizer, messages: list[dict]) -> list[int]:
    """Token ids of the conversation so far plus the assistant header, ready for generation."""
    ensure_chat_template(tokenizer)
    return render_ids(tokenizer, messages, add_generation_prompt=True)


def tokenize_text(tokenizer, text: str) -> list[int]:
    """A pre-training document: start + tokens + end, where start and end are BOS and EOS unless
    those are chat turn markers (see data/documents.py); either is omitted if there is none."""
    from posttrain.data.documents import document_boundaries

    start, end = document_boundaries(tokenizer)
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if start is not None:
        ids.insert(0, start)
    if end is not None:
        ids.append(end)
    return ids
