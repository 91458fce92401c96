"""One job shape for data work: rows in -> one batch at a time -> chunk files -> OUT.jsonl + manifest.

    run_job(items, process_batch, JobSpec(out=..., batch_size=..., identity={...}))

A job's items are cut into batches of `batch_size` (after taking this process's shard, a contiguous
block of the items). `process_batch(batch, batch_index)` returns the batch's output rows and the
items that failed (with why). Each batch's rows are written to `OUT.parts/chunk-NNNNNN.jsonl`
through a temp file and an atomic rename, so a chunk is either whole or absent: after a kill -9
the same command skips the finished chunks and redoes only the rest (no duplicate, no missing
row). A batch with failures also leaves `chunk-NNNNNN.failures.json`; such a batch is redone by
the next run (its failures may have been transient, e.g. a server that was down).
When every batch is done, the chunks are joined into OUT (atomically) and `OUT-stem.manifest.json`
is written beside it: the job's identity (inputs with sha256, model, backend, settings), the
shard, counts, and every failure with its reason. The parts directory is then removed unless
failures remain. `identity` guards resume: parts left by a job with other settings are an error,
never silently mixed in.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from posttrain.checkpoint.file_lock import hold_lock
from posttrain.errors import UserError

CHUNK_DIGITS = 6


@dataclass(frozen=True)
class Shard:
    """Shard `index` (0-based) of `count`: a contiguous block of the items, so shards joined in
    index order give the items' order back."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str | None) -> Shard:
        if not text:
            return cls()
        index, sep, count = text.partition("/")
        try:
            shard = cls(int(index), int(count)) if sep else None
        except ValueError:
            shard = None
        if shard is None or shard.count < 1 or not 0 <= shard.index < shard.count:
            raise UserError(f"--shard {text!r}: expected I/K with 0 <= I < K, e.g. 0/4")
        return shard

    def bounds(self, n: int) -> tuple[int, int]:
        return self.index * n // self.count, (self.index + 1) * n // self.count

    def take(self, items: Sequence) -> list:
        start, stop = self.bounds(len(items))
        return list(items[start:stop])

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass
class BatchOutput:
    rows: list[dict]
    failures: list[dict] = field(default_factory=list)  # {"item": ..., "error": why}, one per failed item


@dataclass
class JobSpec:
    out: Path
    batch_size: int
    identity: dict[str, Any]  # what the output depends on; parts of a different job are refused
    shard: Shard = Shard()
    desc: str = "rows"
    extra_counts: dict[str, int] = field(default_factory=dict)  # e.g. invalid input rows skipped
    show_progress: bool = True


def parts_dir(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def manifest_path(out: Path) -> Path:
    return out.with_name(out.stem + ".manifest.json")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_job(items: Sequence, process_batch: Callable[[list, int], BatchOutput], spec: JobSpec) -> dict:
    """Process every batch not finished yet, join the chunks into spec.out; returns the manifest."""
    if spec.batch_size < 1:
        raise UserError(f"batch size must be >= 1, got {spec.batch_size}")
    out = Path(spec.out)
    lock_job_output(out)
    finished = _finished_manifest(out, spec)
    if finished is not None:
        return finished
    mine = spec.shard.take(items)
    batches = [mine[start : start + spec.batch_size] for start in range(0, len(mine), spec.batch_size)]
    parts = open_parts(out, spec)
    started = time.monotonic()
    todo = [b for b in range(len(batches)) if not _is_done(parts, b)]
    done_items = len(mine) - sum(len(batches[b]) for b in todo)
    with tqdm(
        total=len(mine),
        initial=done_items,
        desc=spec.desc,
        unit="row",
        dynamic_ncols=True,
        disable=not spec.show_progress or not todo,
    ) as bar:
        for b in todo:
            result = process_batch(batches[b], b)
            _write_chunk(parts, b, result)
            bar.update(len(batches[b]))
    return _finish(out, parts, len(batches), len(mine), spec, time.monotonic() - started)


def lock_job_output(out: Path) -> None:
    """One writer per output (.OUT.lock beside it, released when the process exits): a second job
    on the same output is refused naming the first one's PID, before it reads or writes anything."""
    out.parent.mkdir(parents=True, exist_ok=True)
    holder = hold_lock(out.with_name(f".{out.name}.lock"), "a job output")
    if holder is not None:
        raise UserError(f"{out} is in use by another job (PID {holder}); wait for it to end or choose another output")


def _finished_manifest(out: Path, spec: JobSpec) -> dict | None:
    """The manifest of this very job when it already finished without failures (rerun = no-op)."""
    mpath = manifest_path(out)
    if parts_dir(out).exists() or not out.is_file() or not mpath.is_file():
        return None
    manifest = json.loads(mpath.read_text())
    same = _job_identity(manifest) == json.loads(
        json.dumps({**spec.identity, "batch_size": spec.batch_size})
    ) and manifest.get("shard") == str(spec.shard)
    return manifest if same and not manifest.get("failures") else None


def open_parts(out: Path, spec: JobSpec) -> Path:
    """The parts directory, created with this job's identity, or checked against it on resume."""
    parts = parts_dir(out)
    identity = {"identity": spec.identity, "shard": str(spec.shard), "batch_size": spec.batch_size}
    marker = parts / "job.json"
    if marker.is_file():
        previous = json.loads(marker.read_text())
        if previous != json.loads(json.dumps(identity)):
            changed = sorted(
                k
                for k in set(previous["identity"]) | set(spec.identity)
                if previous["identity"].get(k) != identity["identity"].get(k)
            )
            changed += [k for k in ("shard", "batch_size") if previous[k] != identity[k]]
            raise UserError(
                f"{parts} holds the parts of a different job (differs in: "
                f"{', '.join(changed) or 'settings'}); delete it or choose another --out"
            )
    else:
        parts.mkdir(parents=True, exist_ok=True)
        write_atomically(marker, json.dumps(identity, indent=2) + "\n")
    for stale in parts.glob(".tmp-*"):
        stale.unlink(missing_ok=True)
    return parts


def _chunk(parts: Path, index: int) -> Path:
    return parts / f"chunk-{index:0{CHUNK_DIGITS}d}.jsonl"


def _failures_file(parts: Path, index: int) -> Path:
    return parts / f"chunk-{index:0{CHUNK_DIGITS}d}.failures.json"


def _is_done(parts: Path, index: int) -> bool:
    """Whole (renamed into place) and without failures; a batch with failures is tried again."""
    return _chunk(parts, index).is_file() and not _failures_file(parts, index).exists()


def _write_chunk(parts: Path, index: int, result: BatchOutput) -> None:
    """Failures first, then the rows: the chunk's rename is what marks the batch as processed."""
    failures = _failures_file(parts, index)
    if result.failures:
        write_atomically(failures, json.dumps(result.failures, default=str) + "\n")
    else:
        failures.unlink(missing_ok=True)
    write_atomically(_chunk(parts, index), "".join(json.dumps(row) + "\n" for row in result.rows))


def write_atomically(path: Path, text: str) -> None:
    """temp file in the same directory, flushed to disk, then renamed over `path`."""
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _finish(out: Path, parts: Path, n_batches: int, n_items: int, spec: JobSpec, wall_s: float) -> dict:
    rows_out, failures = 0, []
    tmp = out.with_name(f".tmp-{out.name}-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as handle:
        for b in range(n_batches):
            text = _chunk(parts, b).read_text(encoding="utf-8")
            rows_out += text.count("\n")
            handle.write(text)
            if _failures_file(parts, b).exists():
                failures += json.loads(_failures_file(parts, b).read_text())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, out)
    manifest = {
        **spec.identity,
        "shard": str(spec.shard),
        "batch_size": spec.batch_size,
        "output": str(out),
        "output_sha256": file_sha256(out),
        "counts": {"items": n_items, "rows_out": rows_out, "failed": len(failures), **spec.extra_counts},
        "failures": failures,
        "wall_s_last_run": round(wall_s, 3),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_atomically(manifest_path(out), json.dumps(manifest, indent=2, default=str) + "\n")
    if not failures:
        shutil.rmtree(parts, ignore_errors=True)
    return manifest


def concat_shards(paths: Sequence[str | Path], out: str | Path) -> dict:
    """Join the outputs of shards 0..K-1 of one job (in shard order) into `out`, with one manifest
    whose counts and failures are the shards' sums."""
    manifests = [read_shard_manifest(Path(path)) for path in paths]
    shards = [Shard.parse(m["shard"]) for m in manifests]
    counts = {s.count for s in shards}
    if len(counts) != 1 or sorted(s.index for s in shards) != list(range(len(paths))) or counts != {len(paths)}:
        raise UserError(f"shards {', '.join(map(str, shards))}: need each of 0..K-1 of one K exactly once")
    identity = _job_identity(manifests[0])
    for path, manifest in zip(paths, manifests):
        if _job_identity(manifest) != identity:
            raise UserError(f"{path}: a shard of a different job (inputs, model or settings differ)")
    order = sorted(range(len(paths)), key=lambda i: shards[i].index)
    out = Path(out)
    lock_job_output(out)
    write_atomically(out, "".join(Path(paths[i]).read_text(encoding="utf-8") for i in order))
    counts_sum: dict[str, int] = {}
    for manifest in manifests:
        for key, value in manifest["counts"].items():
            counts_sum[key] = counts_sum.get(key, 0) + value
    merged = {
        **manifests[order[0]],
        "shard": f"0-{len(paths) - 1}/{len(paths)} joined",
        "output": str(out),
        "output_sha256": file_sha256(out),
        "counts": counts_sum,
        "failures": [f for i in order for f in manifests[i]["failures"]],
        "warnings": list(dict.fromkeys(w for i in order for w in manifests[i].get("warnings", []))),
        "shards": [str(paths[i]) for i in order],
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_atomically(manifest_path(out), json.dumps(merged, indent=2, default=str) + "\n")
    return merged


# "warnings": notes added after a run (add_run_notes), not part of what the output depends on
_RUN_FIELDS = (
    "shard",
    "output",
    "output_sha256",
    "counts",
    "failures",
    "wall_s_last_run",
    "created",
    "shards",
    "warnings",
)


def read_shard_manifest(path: Path) -> dict:
    """A finished shard's manifest, checked for the fields concat reads and against the shard's
    file (row count, and sha256 when the manifest records it): any problem is one line."""
    mpath = manifest_path(path)
    if not mpath.is_file():
        raise UserError(f"{path}: no manifest ({mpath.name}) beside it: not the output of a finished job")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise UserError(f"{mpath}: corrupt manifest (not JSON: {err})") from None
    counts = manifest.get("counts") if isinstance(manifest, dict) else None
    if (
        not isinstance(counts, dict)
        or not isinstance(counts.get("rows_out"), int)
        or not isinstance(manifest.get("failures"), list)
        or not isinstance(manifest.get("shard"), str)
    ):
        raise UserError(f"{mpath}: corrupt manifest (needs shard, counts.rows_out and failures)")
    try:
        Shard.parse(manifest["shard"])
    except UserError:
        raise UserError(f"{mpath}: corrupt manifest (shard {manifest['shard']!r} is not I/K)") from None
    _check_shard_file(path, manifest)
    return manifest


def _check_shard_file(path: Path, manifest: dict) -> None:
    """The shard's file is what its job wrote: an edited or truncated shard is refused."""
    if not path.is_file():
        raise UserError(f"{path}: no such file (its manifest is there)")
    rows = sum(1 for _ in open(path, "rb"))
    if rows != manifest["counts"]["rows_out"]:
        raise UserError(
            f"{path}: holds {rows} rows, its manifest says {manifest['counts']['rows_out']}; "
            "the shard was changed after its job finished (rerun that shard)"
        )
    recorded = manifest.get("output_sha256")
    if recorded is not None and file_sha256(path) != recorded:
        raise UserError(
            f"{path}: its sha256 differs from the one in its manifest; the shard was "
            "changed after its job finished (rerun that shard)"
        )


def add_run_notes(out: Path, counts: dict[str, int], warnings: list[str]) -> dict:
    """Counts and warnings a command derives from its finished output (so a resumed job reports
    the whole output, not its last run), written into the manifest in place."""
    mpath = manifest_path(Path(out))
    manifest = json.loads(mpath.read_text())
    manifest["counts"] = {**manifest["counts"], **counts}
    manifest["warnings"] = list(warnings)
    write_atomically(mpath, json.dumps(manifest, indent=2, default=str) + "\n")
    return manifest


def _job_identity(manifest: dict) -> dict:
    return {k: v for k, v in manifest.items() if k not in _RUN_FIELDS}
