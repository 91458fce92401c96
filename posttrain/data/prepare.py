"""Recipe sources -> tokenised training units (the part of the data flow that needs a tokenizer)."""

from __future__ import annotations

import functools
import itertools
import logging
import random
from collections.abc import Iterator, Sequence

from posttrain.config.recipe import DEFAULT_MAX_ROW_BYTES, DataConfig, SourceConfig
from posttrain.data.batching import Example
from posttrain.data.cache import source_key, streamed_examples, tokenizer_fingerprint
from posttrain.data.chat import tokenize_conversation, tokenize_text
from posttrain.data.parallel import parallel_map
from posttrain.data.sources import LoadedRecords, RecordStream, load_records
from posttrain.data.table import ExampleTable, take
from posttrain.errors import UserError, row_error

log = logging.getLogger(__name__)


def check_sources(sources: Sequence[SourceConfig], kind: str) -> None:
    if not sources:
        raise UserError(f"the recipe has no data sources (data.sources) of {kind} records")


def load_sources(
    sources: Sequence[SourceConfig], kind: str, on_error: str, max_row_bytes: int | None = DEFAULT_MAX_ROW_BYTES
) -> list[LoadedRecords]:
    """Every source's records in memory (preference, prompt and reward data: small per row and
    needed whole by their stages); SFT and pre-training stream instead."""
    check_sources(sources, kind)
    return [
        load_records(
            s.path,
            kind=kind if s.kind == "auto" else s.kind,
            on_error=on_error,
            split=s.split,
            columns=s.columns or None,
            max_row_bytes=max_row_bytes,
        )
        for s in sources
    ]


# Rows validated and tokenised at a time by a cold build: its memory is one chunk of records and
# tokens, whatever the size of the source (the tokens go to the cache entry chunk by chunk).
STREAM_ROWS = 20_000


def conversation_examples(
    tokenizer, source: SourceConfig, max_length: int, on_error: str, max_row_bytes: int | None = DEFAULT_MAX_ROW_BYTES
) -> ExampleTable:
    """A source's conversations tokenised with assistant-only labels, streamed from the file into
    the on-disk cache and read back memory-mapped. An example longer than max_length is an error
    naming its row (or skipped and counted with on_error: skip), never silently truncated."""
    stream = _record_stream(source, "conversation", on_error, max_row_bytes)
    key = _stream_key(stream, tokenizer, max_length=max_length)
    tokenize = functools.partial(_conversation_ids, tokenizer)
    return streamed_examples(key, Reiterable(functools.partial(_conversation_chunks, stream, tokenize, max_length)))


def text_documents(
    tokenizer, source: SourceConfig, on_error: str, max_row_bytes: int | None = DEFAULT_MAX_ROW_BYTES
) -> Sequence[list[int]]:
    """A source's pre-training documents as BOS + tokens + EOS, streamed into the on-disk cache
    and read back memory-mapped; packing splits long ones."""
    stream = _record_stream(source, "text", on_error, max_row_bytes)
    tokenize = functools.partial(_text_ids, tokenizer)
    chunks = Reiterable(
        lambda: (
            [Example(ids, ids) for ids in parallel_map(tokenize, [r for _, r in chunk])] for chunk in _chunks(stream)
        )
    )
    return streamed_examples(_stream_key(stream, tokenizer), chunks).documents()


class Reiterable:
    """Chunks that can be produced again (each iteration re-reads the file): the cache rebuilds
    them in memory when its entry cannot be written (a full disk)."""

    def __init__(self, make):
        self.make = make

    def __iter__(self):
        return iter(self.make())


def _record_stream(source: SourceConfig, kind: str, on_error: str, max_row_bytes: int | None) -> RecordStream:
    return RecordStream(
        source.path,
        kind if source.kind == "auto" else source.kind,
        on_error,
        source.split,
        source.columns or None,
        max_row_bytes,
    )


def _stream_key(stream: RecordStream, tokenizer, **settings) -> str:
    return source_key(
        stream.path,
        tokenizer_fingerprint(tokenizer),
        kind=stream.kind,
        split=stream.split,
        columns=stream.columns,
        on_error=stream.on_error,
        max_row_bytes=stream.max_row_bytes,
        **settings,
    )


def _chunks(stream: RecordStream) -> Iterator[list]:
    rows = iter(stream)
    while chunk := list(itertools.islice(rows, STREAM_ROWS)):
        yield chunk


def _conversation_chunks(stream: RecordStream, tokenize, max_length: int) -> Iterator[list[Example]]:
    kept = too_long = 0
    for chunk in _chunks(stream):
        examples = []
        for (row, _), (input_ids, labels) in zip(chunk, parallel_map(tokenize, [r for _, r in chunk])):
            if len(input_ids) <= max_length:
                examples.append(Example(input_ids, labels))
            elif stream.on_error == "fail":
                raise row_error(
                    stream.path,
                    row,
                    "messages",
                    f"{len(input_ids)} tokens, longer than max_length {max_length} "
                    "(raise data.max_length or set data.on_error: skip)",
                )
            else:
                too_long += 1
        kept += len(examples)
        yield examples
    if too_long:
        log.warning("%s: skipped %d conversations longer than %d tokens", stream.path, too_long, max_length)
    if not kept:
        raise UserError(f"{stream.path}: no conversation fits in max_length {max_length}")


def _conversation_ids(tokenizer, record) -> tuple[list[int], list[int]]:
    return tokenize_conversation(tokenizer, record.messages)


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
        raise UserError(
            f"data.max_length {data.max_length} is longer than the model's context ({model_context} tokens)"
        )
    return data.max_length or model_context
