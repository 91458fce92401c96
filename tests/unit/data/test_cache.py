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
