import json

import pytest

from posttrain.data.jobs import (
    BatchOutput,
    JobSpec,
    Shard,
    concat_shards,
    manifest_path,
    parts_dir,
    run_job,
)
from posttrain.errors import UserError


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


class Crash(Exception):
    pass


def doubler(calls, crash_at=None, fail_items=()):
    def process(batch, index):
        calls.append(index)
        if index == crash_at:
            raise Crash()
        rows = [{"x": x, "y": 2 * x} for x in batch if x not in fail_items]
        failures = [{"item": x, "error": "scripted"} for x in batch if x in fail_items]
        return BatchOutput(rows, failures)

    return process


def spec(tmp_path, **kw):
    return JobSpec(
        out=tmp_path / "out.jsonl",
        batch_size=3,
        identity={"model": "m", "settings": {"t": 1}},
        show_progress=False,
        **kw,
    )


def test_crash_then_rerun_does_each_batch_once_and_loses_no_row(tmp_path):
    items, calls = list(range(10)), []
    with pytest.raises(Crash):
        run_job(items, doubler(calls, crash_at=2), spec(tmp_path))
    assert calls == [0, 1, 2]
    assert not (tmp_path / "out.jsonl").exists()
    calls.clear()
    manifest = run_job(items, doubler(calls), spec(tmp_path))
    assert calls == [2, 3]  # chunks 0 and 1 were kept
    assert [r["x"] for r in _rows(tmp_path / "out.jsonl")] == items
    assert manifest["counts"] == {"items": 10, "rows_out": 10, "failed": 0}
    assert not parts_dir(tmp_path / "out.jsonl").exists()
    assert json.loads(manifest_path(tmp_path / "out.jsonl").read_text())["settings"] == {"t": 1}
    calls.clear()
    run_job(items, doubler(calls), spec(tmp_path))  # finished: a rerun is a no-op
    assert calls == []


def test_a_half_written_chunk_is_never_read(tmp_path):
    items, calls = list(range(6)), []
    with pytest.raises(Crash):
        run_job(items, doubler(calls, crash_at=1), spec(tmp_path))
    parts = parts_dir(tmp_path / "out.jsonl")
    (parts / ".tmp-chunk-000001.jsonl-999").write_text('{"x": 3, "y"')  # a kill during the write
    run_job(items, doubler([]), spec(tmp_path))
    assert [r["x"] for r in _rows(tmp_path / "out.jsonl")] == items


def test_failures_are_recorded_and_their_batch_retried_on_rerun(tmp_path):
    items, calls = list(range(6)), []
    manifest = run_job(items, doubler(calls, fail_items={4}), spec(tmp_path))
    assert manifest["counts"]["failed"] == 1 and manifest["failures"] == [{"item": 4, "error": "scripted"}]
    assert [r["x"] for r in _rows(tmp_path / "out.jsonl")] == [0, 1, 2, 3, 5]
    calls.clear()
    manifest = run_job(items, doubler(calls), spec(tmp_path))
    assert calls == [1] and manifest["failures"] == []
    assert [r["x"] for r in _rows(tmp_path / "out.jsonl")] == items


def test_parts_of_another_job_are_refused(tmp_path):
    with pytest.raises(Crash):
        run_job(list(range(6)), doubler([], crash_at=1), spec(tmp_path))
    other = spec(tmp_path)
    other.identity = {"model": "other", "settings": {"t": 1}}
    with pytest.raises(UserError, match="different job.*model"):
        run_job(list(range(6)), doubler([]), other)


def test_shards_are_contiguous_blocks_and_concat_restores_the_order(tmp_path):
    items = list(range(11))
    outs = []
    for i in range(3):
        s = spec(tmp_path, shard=Shard(i, 3))
        s.out = tmp_path / f"shard{i}.jsonl"
        run_job(items, doubler([]), s)
        outs.append(s.out)
    assert [len(_rows(p)) for p in outs] == [3, 4, 4]
    merged = concat_shards([outs[2], outs[0], outs[1]], tmp_path / "all.jsonl")
    assert [r["x"] for r in _rows(tmp_path / "all.jsonl")] == items
    assert merged["counts"]["rows_out"] == 11
    with pytest.raises(UserError, match="exactly once"):
        concat_shards(outs[:2], tmp_path / "bad.jsonl")


@pytest.mark.parametrize("text", ["3/3", "x/2", "1", "-1/2"])
def test_bad_shard_is_one_line(text):
    with pytest.raises(UserError, match="--shard"):
        Shard.parse(text)
