"""The shared curation pass: row text of every record kind, output in the input's format, and a
run killed midway then rerun gives every kept row exactly once."""

import json

import pytest

from posttrain.curation.rows import PassSpec, per_row, row_text, run_pass
from posttrain.errors import UserError
from tests.unit.curation.synthetic import chat, read_jsonl, write_jsonl


@pytest.mark.parametrize(
    "row, part, text",
    [
        ({"text": "raw"}, "prompt", "raw"),
        (chat("q", "a"), "prompt", "q"),
        (chat("q", "a"), "all", "q\na"),
        ({"prompt": "q", "chosen": "good", "rejected": ["bad", "worse"]}, "response", "good\nbad\nworse"),
        ({"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]}, "all", "s\nq"),
        ({"instruction": "do", "output": "done"}, "response", "done"),
    ],
)
def test_row_text_of_each_record_kind(row, part, text):
    assert row_text(row, part, "f.jsonl", 1) == text


def test_row_of_no_kind_is_a_one_line_error_naming_the_row():
    with pytest.raises(UserError, match=r"^f.jsonl: row 7: field '\(kind\)'"):
        row_text({"foo": 1}, "all", "f.jsonl", 7)


class Crash(Exception):
    pass


def odd_remover(seen, crash_at=None):
    @per_row
    def judge(where, row):
        seen.append((where.shard_index, where.position))
        if (where.shard_index, where.position) == crash_at:
            raise Crash()
        return {"filter": "odd"} if row["i"] % 2 else None

    return judge


def test_killed_midway_then_rerun_gives_each_row_once(tmp_path):
    (tmp_path / "in").mkdir()
    for k in range(3):
        write_jsonl(tmp_path / "in" / f"s{k}.jsonl", [{"i": i} for i in range(k * 100, (k + 1) * 100)])
    spec = PassSpec(str(tmp_path / "in"), str(tmp_path / "out"), "test", {"rule": "odd"}, batch_size=16)
    seen = []
    with pytest.raises(Crash):
        run_pass(spec, odd_remover(seen, crash_at=(1, 50)))
    (tmp_path / "out.parts" / ".tmp-000001.jsonl-123").write_text('{"i": 10')  # a kill during a write
    seen.clear()
    manifest = run_pass(spec, odd_remover(seen))
    assert {s for s, _ in seen} == {1, 2}  # shard 0 was finished and is not redone
    kept = [row["i"] for k in range(3) for row in read_jsonl(tmp_path / "out" / f"s{k}.jsonl")]
    assert kept == list(range(0, 300, 2))
    removed = [r["row"] for r in read_jsonl(tmp_path / "out.removed.jsonl")]
    assert removed == [n for k in range(3) for n in range(2, 101, 2)]
    assert manifest["counts"] == {"rows_in": 300, "kept": 150, "removed": 150, "removed_by": {"odd": 150}}
    assert not (tmp_path / "out.parts").exists()
    seen.clear()
    assert run_pass(spec, odd_remover(seen)) == manifest and seen == []  # finished: a rerun is a no-op
    (tmp_path / "in" / "s2.jsonl").write_text('{"i": 1}\n')  # the input changed: done again
    spec = PassSpec(str(tmp_path / "in"), str(tmp_path / "out"), "test", {"rule": "odd"})  # a new command
    assert run_pass(spec, odd_remover(seen))["counts"]["rows_in"] == 201 and len(seen) == 201


def test_parts_of_other_settings_are_refused(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [{"i": i} for i in range(4)])
    source, out = str(tmp_path / "in.jsonl"), str(tmp_path / "o.jsonl")
    with pytest.raises(Crash):
        run_pass(PassSpec(source, out, "t", {"n": 1}), odd_remover([], (0, 1)))
    with pytest.raises(UserError, match="parts of a different job.*differs in: n"):
        run_pass(PassSpec(source, out, "t", {"n": 2}), odd_remover([]))


def test_output_format_must_match_input(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [{"i": 0}])
    with pytest.raises(UserError, match="must have the input's format"):
        run_pass(PassSpec(str(tmp_path / "in.jsonl"), str(tmp_path / "o.parquet"), "t", {}), odd_remover([]))
    with pytest.raises(UserError, match="no such file"):
        run_pass(PassSpec(str(tmp_path / "none.jsonl"), str(tmp_path / "o.jsonl"), "t", {}), odd_remover([]))


def test_parquet_keeps_schema_and_values(tmp_path):
    import pyarrow
    import pyarrow.parquet as pq

    rows = [{"i": i, "score": i / 3, "tags": ["a"] * (i % 3), "meta": {"k": str(i)}} for i in range(2000)]
    pq.write_table(pyarrow.Table.from_pylist(rows), tmp_path / "in.parquet")
    run_pass(PassSpec(str(tmp_path / "in.parquet"), str(tmp_path / "o.parquet"), "t", {}), odd_remover([]))
    table = pq.read_table(tmp_path / "o.parquet")
    assert table.schema == pq.read_schema(tmp_path / "in.parquet")
    assert table.to_pylist() == rows[::2]
    assert json.loads((tmp_path / "o.manifest.json").read_text())["counts"]["kept"] == 1000
