"""Recipe sources -> tokenised training units (the part of the data flow that needs a tokenizer)."""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Sequence

from posttrain.config import DEFAULT_MAX_ROW_BYTES, DataConfig, SourceConfig
from posttrain.data.batching import Example
from posttrain.data.cache import cached_examples, records_key, tokenizer_fingerprint
from posttrain.data.chat import tokenize_conversation, tokenize_text
from posttrain.data.parallel import parallel_map
from posttrain.data.sources import LoadedRecords, load_records
from posttrain.data.table import ExampleTable, take
from posttrain.errors import UserError, row_error

log = logging.getLogger(__name__)


def load_sources(sources: Sequence[SourceConfig], kind: str, on_error: str,
                 max_row_bytes: int | None = DEFAULT_MAX_ROW_BYTES) -> list[LoadedRecords]:
    if not sources:
        raise UserError(f"the recipe has no data sources (data.sources) of {kind} records")
    return [load_records(s.path, kind=kind if s.kind == "auto" else s.kind, on_error=on_error,
                         split=s.split, columns=s.columns or None, max_row_bytes=max_row_bytes)
            for s in sources]


def conversation_examples(tokenizer, loaded: LoadedRecords, max_length: int,
                          on_error: str) -> ExampleTable:
    """Tokenise conversations with assistant-only labels (cached on disk, read back memory-mapped);
    an example longer than max_length is an error naming its row (or skipped and counted with
    on_error: skip), never silently truncated."""
    key = records_key(loaded.records, tokenizer_fingerprint(tokenizer), kind="conversation",
                      max_length=max_length, on_error=on_error)
    return cached_examples(key, lambda: _tokenize_conversations(tokenizer, loaded, max_length, on_error))


def _tokenize_conversations(tokenizer, loaded: LoadedRecords, max_length: int,
                            on_error: str) -> list[Example]:
    examples, too_long = [], 0
    tokenized = parallel_map(functools.partial(_conversation_ids, tokenizer), loaded.records)
    for row, (input_ids, labels) in zip(loaded.rows, tokenized):
        if len(input_ids) > max_length:
            if on_error == "fail":
                raise row_error(loaded.path, row, "messages",
                                f"{len(input_ids)} tokens, longer than max_length {max_length} "
                                "(raise data.max_length or set data.on_error: skip)")
            too_long += 1
            continue
        examples.append(Example(input_ids, labels))
    if too_long:
        log.warning("%s: skipped %d conversations longer than %d tokens", loaded.path, too_long, max_length)
    if not examples:
        raise UserError(f"{loaded.path}: no conversation fits in max_length {max_length}")
    return examples


def _conversation_ids(tokenizer, record) -> tuple[list[int], list[int]]:
    return tokenize_conversation(tokenizer, record.messages)


def text_documents(tokenizer, loaded: LoadedRecords) -> Sequence[list[int]]:
    """Pre-training documents as BOS + tokens + EOS (cached on disk, read back memory-mapped);
    packing splits long ones."""
    key = records_key(loaded.records, tokenizer_fingerprint(tokenizer), kind="text")
    examples = cached_examples(key, lambda: [Example(ids, ids) for ids in parallel_map(
        functools.partial(_text_ids, tokenizer), loaded.records)])
    return examples.documents()


def _text_ids(tokenizer, record) -> list[int]:
    return tokenize_text(tokenizer, record.text)


def split_holdout(items: Sequence, fraction: float, seed: int) -> tuple[Sequence, Sequence]:
    """A seed-determined held-out share (at least one item when fraction > 0); views of a
    memory-mapped table, lists of a list."""
    if fraction <= 0:
        return items, []
    order = list(range(len(items)))
    random.Random(f"{seed}/holdout").shuffle(order)
    n_held = max(1, round(fraction * len(items)))
    held = set(order[:n_held])
    return take(items, [i for i in range(len(items)) if i not in held]), take(items, sorted(held))


def max_length_for(data: DataConfig, model_context: int) -> int:
    if data.max_length and data.max_length > model_context:
        raise UserError(f"data.max_length {data.max_length} is longer than the model's context "
                        f"({model_context} tokens)")
    return data.max_length or model_context
