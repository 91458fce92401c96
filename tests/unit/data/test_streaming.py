"""SFT and pre-training data stream from the source into the cache: a cold build holds one chunk
of rows, never the whole file, and writes the same entry the in-memory path writes."""

import json
import tracemalloc

import numpy as np
import pytest
from safetensors.numpy import load_file

from posttrain.config.recipe import SourceConfig
from posttrain.data import cache, prepare
from posttrain.data.batching import Example
from posttrain.data.synth.arithmetic import pretrain_rows, sft_rows
from posttrain.errors import UserError
from posttrain.model.load import load_tokenizer

EXAMPLES = [Example([1, 2, 3], [-100, 2, 3]), Example([7], [7]), Example([4, 5], [4, -100])]


@pytest.fixture
def tok(tiny_dir):
    return load_tokenizer(str(tiny_dir))


@pytest.fixture(autouse=True)
def one_process_small_chunks(monkeypatch, tmp_path):
    monkeypatch.setenv("POSTTRAIN_NUM_PROC", "1")
    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(prepare, "STREAM_ROWS", 100)


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return SourceConfig(path=str(path))


def test_streamed_entry_equals_the_in_memory_one_and_loads_in_safetensors(tmp_path, monkeypatch):
    streamed = cache.streamed_examples("s", iter([EXAMPLES[:2], [], EXAMPLES[2:]]))
    in_memory = cache.cached_examples("m", lambda: EXAMPLES)
    assert streamed == in_memory == EXAMPLES and isinstance(streamed.input_ids, np.memmap)
    entries = {p.stem: p for p in (tmp_path / "cache" / "tokenized").glob("*.safetensors")}
    plain = load_file(str(entries["s"]))  # another tool reads the entry unchanged
    assert plain["input_ids"].tolist() == [1, 2, 3, 7, 4, 5] and plain["lengths"].tolist() == [3, 1, 2]
    assert {k: v.tolist() for k, v in plain.items()} == {k: v.tolist() for k, v in load_file(str(entries["m"])).items()}
    assert cache.streamed_examples("s", iter(pytest.fail, None)) == EXAMPLES  # warm: nothing rebuilt


def test_sft_and_pretrain_examples_are_what_tokenising_each_row_gives(tok, tmp_path):
    from posttrain.data.chat import tokenize_conversation, tokenize_text
    from posttrain.data.sources import load_records

    sft = _write(tmp_path / "sft.jsonl", sft_rows(250, seed=0))
    table = prepare.conversation_examples(tok, sft, 256, "fail")
    expected = [Example(*tokenize_conversation(tok, r.messages)) for r in load_records(sft.path).records]
    assert table == expected  # 3 chunks of 100 rows, in order
    text = _write(tmp_path / "pre.jsonl", pretrain_rows(150, seed=0))
    docs = prepare.text_documents(tok, text, "fail")
    assert docs == [tokenize_text(tok, r.text) for r in load_records(text.path).records]


def _peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_cold_build_memory_does_not_grow_with_the_file(tok, tmp_path):
    small = _write(tmp_path / "small.jsonl", pretrain_rows(400, seed=1))
    large = _write(tmp_path / "large.jsonl", pretrain_rows(3200, seed=2))  # 8x the rows
    sizes = [p.stat().st_size for p in (tmp_path / "small.jsonl", tmp_path / "large.jsonl")]
    peaks = [_peak_bytes(lambda s=s: prepare.text_documents(tok, s, "fail")) for s in (small, large)]
    assert sizes[1] > 7 * sizes[0]
    assert peaks[1] < 1.5 * peaks[0], peaks  # one chunk of rows at a time, whatever the file


def test_a_failing_build_leaves_no_entry_and_fails_again(tok, tmp_path):
    rows = sft_rows(150, seed=0)
    rows[130]["messages"][1]["content"] = "9" * 2000  # in the second chunk
    source = _write(tmp_path / "sft.jsonl", rows)
    for _ in range(2):
        with pytest.raises(UserError, match=r"sft.jsonl: row 131: field 'messages'.*longer than max_length"):
            prepare.conversation_examples(tok, source, 256, "fail")
    assert not list((tmp_path / "cache" / "tokenized").iterdir())  # no entry, no part files
    assert len(prepare.conversation_examples(tok, source, 256, "skip")) == 149


def test_key_follows_the_file_bytes_and_the_settings(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "a"}\n')
    base = cache.source_key(path, "tok", kind="text")
    assert base == cache.source_key(path, "tok", kind="text")
    assert base != cache.source_key(path, "tok", kind="text", on_error="skip")
    assert base != cache.source_key(path, "other", kind="text")
    path.write_text('{"text": "b"}\n')
    assert base != cache.source_key(path, "tok", kind="text")
    with pytest.raises(UserError, match="no such file"):
        cache.source_key(tmp_path / "none.jsonl", "tok")


def test_unwritable_cache_streams_into_a_private_temporary_entry(tok, tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("POSTTRAIN_CACHE", str(blocker))
    source = _write(tmp_path / "pre.jsonl", pretrain_rows(120, seed=0))
    docs = prepare.text_documents(tok, source, "fail")
    assert len(docs) == 120 and "cannot be written" in caplog.text
