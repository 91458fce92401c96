import pytest
import torch

from posttrain.data import cache
from posttrain.data.batching import Example


def test_cache_round_trips_and_builds_once(tmp_path, monkeypatch):
    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path))
    calls = []

    def build():
        calls.append(1)
        return [Example([1, 2, 3], [-100, 2, 3]), Example([7], [7])]

    key = cache.records_key(["a", "b"], "tok", max_length=8)
    first = cache.cached_examples(key, build)
    second = cache.cached_examples(key, build)
    assert first == second and len(calls) == 1
    assert list((tmp_path / "tokenized").glob("*.safetensors"))


def test_key_changes_with_records_tokenizer_and_settings():
    base = cache.records_key(["a"], "tok", max_length=8)
    assert base != cache.records_key(["b"], "tok", max_length=8)
    assert base != cache.records_key(["a"], "other", max_length=8)
    assert base != cache.records_key(["a"], "tok", max_length=9)


def _flip_last_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # inside the tensor data: the header still parses
    path.write_bytes(bytes(data))


def _truncate(path):
    path.write_bytes(path.read_bytes()[:-5])


def _garbage(path):
    path.write_bytes(b"\x00not a safetensors file")


@pytest.mark.parametrize("corrupt", [_flip_last_byte, _truncate, _garbage])
def test_corrupt_entry_is_detected_and_rebuilt(corrupt, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path))
    calls = []

    def build():
        calls.append(1)
        return [Example([1, 2, 3], [-100, 2, 3]), Example([7, 8], [7, 8])]

    key = cache.records_key(["a"], "tok", max_length=8)
    expected = list(cache.cached_examples(key, build))  # items copied out: the entry is mapped
    (entry,) = (tmp_path / "tokenized").glob("*.safetensors")
    corrupt(entry)
    assert cache.cached_examples(key, build) == expected and len(calls) == 2
    assert "corrupt" in caplog.text and "rebuilding" in caplog.text
    caplog.clear()
    assert cache.cached_examples(key, build) == expected and len(calls) == 2  # the rebuilt entry verifies
    assert "corrupt" not in caplog.text


def test_entry_without_a_recorded_hash_is_rebuilt(tmp_path, monkeypatch):
    """Entries written before verification existed carry no hash: rebuilt once, then trusted."""
    from safetensors.torch import save_file

    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path))
    key = "old"
    (tmp_path / "tokenized").mkdir()
    save_file({"x": torch.zeros(2)}, str(tmp_path / "tokenized" / "old.safetensors"))
    got = cache.cached_tensors(key, lambda: {"x": torch.ones(2)})
    assert got["x"].tolist() == [1.0, 1.0]
    assert cache.cached_tensors(key, lambda: {"x": torch.full((2,), 5.0)})["x"].tolist() == [1.0, 1.0]
