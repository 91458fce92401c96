"""Issue 30 item 10: `data concat` checks each shard against its manifest (row count and sha256)
and reports a corrupt manifest in one line, instead of joining what happens to be there."""

import json

import pytest

from posttrain.data.jobs import BatchOutput, JobSpec, Shard, concat_shards, manifest_path, run_job
from posttrain.errors import UserError


def _double(batch, index):
    return BatchOutput([{"x": x, "y": 2 * x} for x in batch])


@pytest.fixture
def shards(tmp_path):
    paths = []
    for i in range(2):
        out = tmp_path / f"part{i}.jsonl"
        run_job(
            list(range(6)),
            _double,
            JobSpec(out=out, batch_size=2, identity={"model": "m"}, shard=Shard(i, 2), show_progress=False),
        )
        paths.append(out)
    return paths


def test_untouched_shards_join(shards, tmp_path):
    merged = concat_shards(shards, tmp_path / "all.jsonl")
    assert merged["counts"]["rows_out"] == 6 and len((tmp_path / "all.jsonl").read_text().splitlines()) == 6


@pytest.mark.parametrize("edit", ["drop_a_row", "change_a_row"])
def test_an_edited_shard_is_refused_naming_it(shards, tmp_path, edit):
    lines = shards[0].read_text().splitlines(keepends=True)
    shards[0].write_text(
        "".join(lines[1:]) if edit == "drop_a_row" else lines[0].replace("0", "7") + "".join(lines[1:])
    )
    with pytest.raises(UserError, match=rf"{shards[0]}: .*(rows|sha256).* manifest"):
        concat_shards(shards, tmp_path / "all.jsonl")
    assert not (tmp_path / "all.jsonl").exists()


@pytest.mark.parametrize(
    "manifest",
    [
        "{not json",
        "[1, 2]",
        json.dumps({"shard": "0/2"}),
        json.dumps({"shard": "zero", "counts": {"rows_out": 3}, "failures": []}),
    ],
)
def test_a_corrupt_manifest_is_one_line(shards, tmp_path, manifest):
    manifest_path(shards[0]).write_text(manifest)
    with pytest.raises(UserError, match=rf"{manifest_path(shards[0])}") as err:
        concat_shards(shards, tmp_path / "all.jsonl")
    assert len(str(err.value).splitlines()) == 1
