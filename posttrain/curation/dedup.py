"""Exact and near (MinHash LSH) deduplication, run on datatrove's pipelines and local executor.

    posttrain curate dedup --set input=shards/ --set out=deduped/ --set tasks=8 --set workers=2

Exact: a row whose normalised text (NFKC, lower-cased, whitespace runs collapsed, trimmed) hashes
like an earlier row's is removed (datatrove ExactDedupSignature -> ExactFindDedups -> ExactDedupFilter).
Near (Broder 1997; LSH banding as in Leskovec et al., Mining of Massive Datasets ch. 3): each row's
word `shingle`-grams (datatrove's simplify_text, numbers kept; words as in decontaminate: \\w+ runs)
get a MinHash signature of num_buckets x hashes_per_bucket permutations; two rows whose signatures
agree on every hash of some bucket are duplicates, and of each connected cluster one row is kept
(datatrove MinhashDedupSignature -> Buckets -> Cluster -> Filter, on the rows left by exact dedup).
Two rows of Jaccard similarity s collide with probability 1 - (1 - s^r)^b (b buckets of r hashes),
an S-curve whose threshold is about (1/b)^(1/r): 0.72 for the defaults b=14, r=8 (FineWeb's); the
manifest records it and the collision probability at 0.5 ... 0.9.

Scale: the rows are never all in memory. Each of `tasks` datatrove tasks reads every tasks-th input
shard as a stream; signatures are sorted files on disk; only the ids of removed rows are held for
the final pass. A folder of many shards uses many tasks (one file is one task). The datatrove stages
live in OUT.parts/ and are skipped when complete on a rerun (datatrove's own completion markers).
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Literal

from posttrain.config.base import Positive, Section

NAME = "dedup"
HELP = "exact (normalised-text hash) and near (MinHash LSH) dedup on datatrove, streaming over shards"
SIMILARITIES = (0.5, 0.6, 0.7, 0.8, 0.9)


class Recipe(Section):
    input: str  # a .jsonl/.parquet file or a folder of shards
    out: str  # same format as input (a folder for a folder)
    exact: bool = True
    near: bool = True
    text: Literal["all", "prompt", "response"] = "all"  # which part of a row is compared
    shingle: Positive = 5  # words per shingle
    num_buckets: Positive = 14  # LSH bands b
    hashes_per_bucket: Positive = 8  # hashes per band r
    seed: int = 1
    tasks: Positive = 1  # datatrove tasks (input shards are split among them)
    workers: Positive = 1  # processes running tasks at once


def lsh_threshold(buckets: int, rows: int) -> float:
    return (1 / buckets) ** (1 / rows)


def collision_probability(similarity: float, buckets: int, rows: int) -> float:
    return 1 - (1 - similarity**rows) ** buckets


def _executors(recipe: Recipe, work: Path, tasks: int) -> list:
    """(name, datatrove executor) of each stage, in order; numbers kept as datatrove's defaults
    except numbers are not normalised to 0 (arithmetic rows differ only in them)."""
    from datatrove.executor import LocalPipelineExecutor

    from posttrain.curation.datatrove_steps import (
        RowDocuments,
        exact_stages,
        near_stages,
    )

    head = [RowDocuments(recipe.input, recipe.text)]
    stages = []
    if recipe.exact:
        stages, head = exact_stages(head[0], work)
    if recipe.near:
        stages += near_stages(head, work, recipe.shingle, recipe.num_buckets, recipe.hashes_per_bucket, recipe.seed)
    return [
        (
            stage.name,
            LocalPipelineExecutor(
                stage.pipeline,
                tasks=stage.tasks or tasks,
                workers=min(recipe.workers, stage.tasks or tasks),
                logging_dir=str(work / "logs" / stage.name),
                start_method="spawn",
            ),
        )
        for stage in stages
    ]


@contextlib.contextmanager
def _stderr_to(path: Path):
    """datatrove logs every step of every task to stderr (and to its logging_dir): send the
    process's stderr, and so its workers', to a file while it runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "a") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def removed_rows(work: Path) -> dict[str, dict]:
    """Document id -> report entry, from the exclusion writers' files."""
    import json

    removed = {}
    for folder, name in (("removed-exact", "exact_dedup"), ("removed-near", "near_dedup")):
        for path in sorted((work / folder).glob("*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                doc = json.loads(line)
                entry = {"filter": name}
                if name == "near_dedup":
                    entry["cluster"] = doc["metadata"].get("minhash_cluster_id")
                removed[doc["id"]] = entry
    return removed


def _run_datatrove(recipe: Recipe, work: Path, extra: dict) -> dict[str, dict]:
    """Run the datatrove stages (each skips its completed tasks); the removed rows by id."""
    import time

    from posttrain.curation.rows import input_shards

    started = time.monotonic()
    stages = _executors(recipe, work, min(recipe.tasks, len(input_shards(recipe.input))))
    for number, (name, executor) in enumerate(stages, 1):
        print(f"dedup: datatrove stage {number}/{len(stages)} ({name})", flush=True)
        with _stderr_to(work / "logs" / "datatrove.stderr"):
            executor.run()
    extra["datatrove_wall_s"] = round(time.monotonic() - started, 2)
    return removed_rows(work)


def run(recipe: Recipe) -> int:
    from posttrain.curation.rows import (
        PassSpec,
        RowRef,
        finished,
        open_pass,
        per_row,
        run_pass,
    )

    if not (recipe.exact or recipe.near):
        from posttrain.errors import UserError

        raise UserError("dedup: exact and near are both off: nothing to do")
    b, r = recipe.num_buckets, recipe.hashes_per_bucket
    extra = {
        "lsh_threshold": round(lsh_threshold(b, r), 4),
        "collision_probability": {str(s): round(collision_probability(s, b, r), 4) for s in SIMILARITIES},
    }
    spec = PassSpec(
        recipe.input,
        recipe.out,
        NAME,
        recipe.model_dump(exclude={"input", "out", "workers"}),
        desc="dedup: write",
        extra=extra,
    )
    removed = {} if finished(spec) else _run_datatrove(recipe, open_pass(spec) / "datatrove", extra)

    @per_row
    def judge(where: RowRef, row: dict) -> dict | None:
        return removed.get(f"{where.shard_index}:{where.position}")

    manifest = run_pass(spec, judge)
    counts = manifest["counts"]
    print(
        f"dedup: kept {counts['kept']} of {counts['rows_in']} rows (removed: {counts['removed_by']}); "
        f"LSH threshold ~{extra['lsh_threshold']}"
    )
    return 0
