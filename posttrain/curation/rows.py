"""What every curation step shares: input shards read as a stream, the text of a row, and a
resumable pass that writes the kept rows, a report of the removed ones and a manifest.

    shards = input_shards("train/")                       # a .jsonl/.parquet file or a folder of them
    for number, row in shard_rows(shards[0]): row_text(row, "prompt", shards[0], number)
    run_pass(PassSpec(input=..., out=..., step="dedup", identity={...}), judge)

`judge(batch) -> verdicts` sees up to PassSpec.batch_size (RowRef, row) pairs at a time (a model
scores a batch at once) and returns one verdict per row: None keeps it, a dict removes it and is
its line in the report, saying why: at least {"filter": NAME}. per_row(fn) makes a judge of a
one-row function fn(where, row). A RowRef names the shard, the row number (for messages) and the
position: the shard's rows counted from 0 in reading order (what datatrove calls a document's index).

Output has the input's shape and format, so training stages read it unchanged: one input file ->
OUT with the same suffix; a folder of shards -> folder OUT with the same shard names. Rows are
written as read (every field kept). Resume: the unit of work is one input shard. Its kept rows,
report lines and counts go to OUT.parts/ (data/jobs.py's parts directory, guarded by the
job's identity); the rename of its kept-rows file marks it done, so after a kill -9 the same
command redoes only unfinished shards (no duplicate, no missing row). When all are done they move
into OUT, the reports are joined into OUT-stem.removed.jsonl and OUT-stem.manifest.json is written.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from posttrain.data.jobs import (
    JobSpec,
    file_sha256,
    lock_job_output,
    manifest_path,
    open_parts,
    parts_dir,
    write_atomically,
)
from posttrain.data.records import RecordError, record_kind, to_record
from posttrain.data.sources import read_rows
from posttrain.errors import UserError, row_error

SHARD_SUFFIXES = (".jsonl", ".parquet")
TEXT_PARTS = ("all", "prompt", "response")
PARQUET_BATCH = 1024


@dataclass(frozen=True)
class RowRef:
    shard_index: int
    shard: Path
    position: int  # 0-based, in reading order
    number: int  # 1-based row number as errors name it (jsonl: the line)


Judge = Callable[[list[tuple[RowRef, dict]]], "list[dict | None]"]


def per_row(fn: Callable[[RowRef, dict], dict | None]) -> Judge:
    return lambda batch: [fn(where, row) for where, row in batch]


def input_shards(path: str | Path) -> list[Path]:
    """The shards of an input: the file itself, or a folder's .jsonl/.parquet files sorted by name."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file or directory")
    shards = sorted(p for p in path.iterdir() if p.suffix in SHARD_SUFFIXES) if path.is_dir() else [path]
    if not shards:
        raise UserError(f"{path}: a folder with no {' or '.join(SHARD_SUFFIXES)} shards")
    for shard in shards:
        if shard.suffix not in SHARD_SUFFIXES:
            raise UserError(f"{shard}: curation reads {' or '.join(SHARD_SUFFIXES)} files, got '{shard.suffix}'")
    return shards


def shard_rows(shard: Path) -> Iterator[tuple[int, dict]]:
    """(1-based row number, row) of one shard, streamed (Parquet in record batches)."""
    return read_rows(shard)


def row_text(row: dict, part: str, path: str | Path, number: int) -> str:
    """The text of any record kind (text, SFT conversation, preference pair, prompt row):
    part="prompt": user turns (a text row: its text); "response": assistant turns (chosen and every
    rejected); "all": every message. Messages are joined by newlines. A row of no record kind is a
    one-line error naming the file, row and field."""
    try:
        record = to_record(row, "auto")
    except RecordError as err:
        raise row_error(path, number, err.field, err.problem) from None
    kind = record_kind(record)
    if kind == "text":
        return record.text if part != "response" else ""
    if kind == "conversation":
        messages = record.messages
    elif kind == "prompt":
        messages = record.prompt
    else:
        messages = [
            *record.prompt,
            *record.chosen,
            *record.rejected,
            *(m for more in record.more_rejected for m in more),
        ]
    roles = {"prompt": ("user",), "response": ("assistant",), "all": ("system", "user", "assistant")}[part]
    return "\n".join(m["content"] for m in messages if m["role"] in roles)


class ShardWriter:
    """Kept rows of one shard, in the shard's own format, into a temp file; commit() renames it
    into place (so the file exists only when whole). Parquet keeps the input's schema."""

    def __init__(self, source: Path, target: Path):
        self.source, self.target = source, target
        self.tmp = target.with_name(f".tmp-{target.name}-{os.getpid()}")
        self.rows: list[dict] = []
        self.count = 0
        if source.suffix == ".parquet":
            import pyarrow.parquet as pq

            self.schema = pq.read_schema(source)
            self.parquet = pq.ParquetWriter(self.tmp, self.schema)
        else:
            self.handle = open(self.tmp, "w", encoding="utf-8")

    def write(self, row: dict) -> None:
        self.count += 1
        if self.source.suffix == ".parquet":
            self.rows.append(row)
            if len(self.rows) >= PARQUET_BATCH:
                self._flush_parquet()
        else:
            self.handle.write(json.dumps(row, ensure_ascii=False) + "\n")

    def _flush_parquet(self) -> None:
        import pyarrow

        self.parquet.write_table(pyarrow.Table.from_pylist(self.rows, schema=self.schema))
        self.rows = []

    def commit(self) -> None:
        if self.source.suffix == ".parquet":
            self._flush_parquet()
            self.parquet.close()
        else:
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self.handle.close()
        os.replace(self.tmp, self.target)


@dataclass
class PassSpec:
    input: str
    out: str
    step: str  # the command's name, first in the manifest
    identity: dict[str, Any]  # the step's settings: parts of a run with other settings are refused
    desc: str = "rows"
    batch_size: int = 256
    extra: dict[str, Any] = field(default_factory=dict)  # written to the manifest (e.g. measured numbers)
    extra_state: dict[str, Any] = field(default_factory=dict, repr=False)  # cached identity


def out_paths(input_path: str | Path, out: str | Path) -> tuple[list[Path], list[Path]]:
    """(input shards, their output paths): OUT itself for one file, OUT/<name> for a folder."""
    shards, out = input_shards(input_path), Path(out)
    if Path(input_path).is_dir():
        return shards, [out / s.name for s in shards]
    if out.suffix != shards[0].suffix:
        raise UserError(f"out {out}: must have the input's format ('{shards[0].suffix}'), got '{out.suffix}'")
    return shards, [out]


def pass_identity(spec: PassSpec) -> dict:
    """What the output depends on: the step, its settings and the input's bytes (sha256 per shard,
    computed once per spec)."""
    if "_identity" not in spec.extra_state:
        shards = input_shards(spec.input)
        spec.extra_state["_identity"] = {
            "step": spec.step,
            "input": spec.input,
            "input_sha256": {s.name: file_sha256(s) for s in shards},
            **spec.identity,
        }
    return spec.extra_state["_identity"]


def finished(spec: PassSpec) -> dict | None:
    """The manifest of this very pass when it has already finished: a rerun is then a no-op."""
    out = Path(spec.out)
    mpath = manifest_path(out)
    if parts_dir(out).exists() or not out.exists() or not mpath.is_file():
        return None
    manifest = json.loads(mpath.read_text())
    identity = json.loads(json.dumps(pass_identity(spec), default=str))
    return manifest if all(manifest.get(k) == v for k, v in identity.items()) else None


def open_pass(spec: PassSpec) -> Path:
    """The pass's parts directory OUT.parts/: created, or checked against the identity on resume.
    A step with work of its own before the pass (dedup's datatrove stages) keeps it under this
    directory, so it is resumed and cleaned up with the pass."""
    out = Path(spec.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return open_parts(out, JobSpec(out=out, batch_size=1, identity=pass_identity(spec)))


def run_pass(spec: PassSpec, judge: Judge) -> dict:
    """Stream every shard not done yet through `judge`; then assemble OUT, the report and the
    manifest. Returns the manifest; raises UserError when no row is kept (naming the filters)."""
    lock_job_output(Path(spec.out))  # one writer per output, as every data job
    manifest = finished(spec)
    if manifest is None:
        shards, targets = out_paths(spec.input, spec.out)
        parts = open_pass(spec)
        with tqdm(desc=spec.desc, unit="row", dynamic_ncols=True) as bar:
            for index, shard in enumerate(shards):
                kept = parts / f"{index:06d}{shard.suffix}"
                if not kept.is_file():
                    _judge_shard(index, shard, kept, parts, judge, spec.batch_size, bar)
        manifest = _assemble(spec, shards, targets, parts)
    counts = manifest["counts"]
    if counts["rows_in"] and not counts["kept"]:
        removed_by = ", ".join(f"{name} {n}" for name, n in counts["removed_by"].items())
        raise UserError(
            f"{spec.step}: every row was removed ({counts['rows_in']} rows; removed by: "
            f"{removed_by}); see {manifest['removed_report']}"
        )
    return manifest


def _judge_shard(index: int, shard: Path, kept: Path, parts: Path, judge: Judge, batch_size: int, bar) -> None:
    writer, removed, rows_in, batch = ShardWriter(shard, kept), [], 0, []

    def flush() -> None:
        for (where, row), verdict in zip(batch, judge(batch), strict=True):
            if verdict is None:
                writer.write(row)
            else:
                removed.append({"shard": shard.name, "row": where.number, **verdict})
        bar.update(len(batch))
        batch.clear()

    for position, (number, row) in enumerate(shard_rows(shard)):
        batch.append((RowRef(index, shard, position, number), row))
        rows_in += 1
        if len(batch) >= batch_size:
            flush()
    flush()
    write_atomically(parts / f"{index:06d}.removed.jsonl", "".join(json.dumps(r) + "\n" for r in removed))
    write_atomically(parts / f"{index:06d}.counts.json", json.dumps({"rows_in": rows_in, "kept": writer.count}))
    writer.commit()  # last: its rename marks the shard done


def _assemble(spec: PassSpec, shards: list[Path], targets: list[Path], parts: Path) -> dict:
    rows_in = kept = 0
    by_filter: Counter = Counter()
    report = Path(spec.out).with_name(Path(spec.out).stem + ".removed.jsonl")
    with open(report.with_name(f".tmp-{report.name}"), "w", encoding="utf-8") as handle:
        for index in range(len(shards)):
            counts = json.loads((parts / f"{index:06d}.counts.json").read_text())
            rows_in, kept = rows_in + counts["rows_in"], kept + counts["kept"]
            text = (parts / f"{index:06d}.removed.jsonl").read_text(encoding="utf-8")
            by_filter.update(json.loads(line)["filter"] for line in text.splitlines())
            handle.write(text)
    os.replace(report.with_name(f".tmp-{report.name}"), report)
    if len(shards) > 1 or Path(spec.input).is_dir():
        targets[0].parent.mkdir(parents=True, exist_ok=True)
    for index, (shard, target) in enumerate(zip(shards, targets)):
        os.replace(parts / f"{index:06d}{shard.suffix}", target)
    manifest = {
        **pass_identity(spec),
        "output": spec.out,
        "removed_report": str(report),
        "counts": {
            "rows_in": rows_in,
            "kept": kept,
            "removed": rows_in - kept,
            "removed_by": dict(sorted(by_filter.items())),
        },
        **spec.extra,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_atomically(manifest_path(Path(spec.out)), json.dumps(manifest, indent=2, default=str) + "\n")
    shutil.rmtree(parts, ignore_errors=True)
    return manifest
