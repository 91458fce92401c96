import pytest

from posttrain.data import parallel
from posttrain.errors import UserError


def _square_or_fail(x):
    if x == -1:
        raise UserError("row -1 is bad")
    return x * x


def test_parallel_map_equals_the_serial_loop_in_order(monkeypatch):
    monkeypatch.setattr(parallel, "MIN_ITEMS", 10)
    items = list(range(1000))
    assert parallel.parallel_map(_square_or_fail, items, workers=3) == [x * x for x in items]
    assert parallel.parallel_map(_square_or_fail, items[:5], workers=3) == [0, 1, 4, 9, 16]  # serial


def test_a_worker_error_is_raised_as_itself(monkeypatch):
    monkeypatch.setattr(parallel, "MIN_ITEMS", 10)
    with pytest.raises(UserError, match="row -1 is bad"):
        parallel.parallel_map(_square_or_fail, list(range(100)) + [-1], workers=2)


def test_worker_count_shares_the_cpus_among_training_processes(monkeypatch):
    monkeypatch.setenv("POSTTRAIN_NUM_PROC", "3")
    assert parallel.default_workers() == 3
    monkeypatch.delenv("POSTTRAIN_NUM_PROC")
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda pid: set(range(32)))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert parallel.default_workers() == 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert parallel.default_workers() == parallel.MAX_WORKERS


def test_sft_tokenisation_in_workers_equals_one_process(monkeypatch, tiny_dir, tmp_path):
    import json

    from posttrain.config.recipe import SourceConfig
    from posttrain.data.prepare import conversation_examples
    from posttrain.data.synth.arithmetic import sft_rows
    from posttrain.model.load import load_tokenizer

    path = tmp_path / "sft.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in sft_rows(60, seed=0)))
    source, tok = SourceConfig(path=str(path)), load_tokenizer(str(tiny_dir))
    monkeypatch.setattr(parallel, "MIN_ITEMS", 10)
    results = []
    for workers in ("1", "2"):
        monkeypatch.setenv("POSTTRAIN_NUM_PROC", workers)
        monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path / f"cache{workers}"))  # cold each time
        results.append(conversation_examples(tok, source, 256, "fail"))
    assert results[0] == results[1] and len(results[0]) == 60
