"""The pieces datatrove's pipelines need from posttrain (imported only when dedup runs: datatrove
is an optional, `curate` extra). Module level, because datatrove pickles its pipeline to workers."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path
from typing import IO, NamedTuple

from datatrove.data import Document
from datatrove.pipeline.dedup import (
    ExactDedupFilter,
    ExactDedupSignature,
    ExactFindDedups,
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)
from datatrove.pipeline.dedup.exact_dedup import ExactDedupConfig
from datatrove.pipeline.writers.disk_base import DiskWriter
from datatrove.utils.hashing import HashConfig
from datatrove.utils.text import TextNormConfig
from datatrove.utils.word_tokenizers import WordTokenizer

from posttrain.curation.rows import input_shards, row_text, shard_rows


def normalised(text: str) -> str:
    """NFKC, lower-cased, whitespace runs collapsed to one space, trimmed."""
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def exact_key(doc: Document) -> str:
    """What exact dedup hashes."""
    return normalised(doc.text)


class WordRuns(WordTokenizer):
    """Words are \\w+ runs, as in the decontaminate step (datatrove's English tokenizer needs NLTK
    data downloaded at run time)."""

    def word_tokenize(self, text: str) -> list[str]:
        return re.findall(r"\w+", text)

    def sent_tokenize(self, text: str) -> list[str]:
        return [text]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return [(0, len(text))]


class RowDocuments:
    """A datatrove reader step: task `rank` of `world_size` streams shards rank, rank + world_size,
    ... and yields each row's text as a Document with id "SHARD_INDEX:POSITION" (the id the final
    pass looks up)."""

    def __init__(self, input_path: str, part: str):
        self.input_path, self.part = input_path, part

    def __call__(self, data, rank: int = 0, world_size: int = 1):
        shards = input_shards(self.input_path)
        for index in range(rank, len(shards), world_size):
            for position, (number, row) in enumerate(shard_rows(shards[index])):
                yield Document(text=row_text(row, self.part, shards[index], number), id=f"{index}:{position}")


class RemovedIds(DiskWriter):
    """An exclusion writer keeping only each removed document's id and metadata, one JSON line per
    document in ${rank}.jsonl (the rows themselves are re-read from the input by the final pass)."""

    default_output_filename = "${rank}.jsonl"
    name = "posttrain removed ids"

    def __init__(self, output_folder: str):
        super().__init__(output_folder, compression=None, mode="wt")

    def _write(self, document: dict, file_handler: IO, _filename: str) -> None:
        file_handler.write(
            json.dumps({"id": document["id"], "metadata": document.get("metadata", {})}, default=str) + "\n"
        )


class Stage(NamedTuple):
    name: str
    pipeline: list
    tasks: int | None = None  # None: as many as the reading stages (input shards split among them)


SHA1 = HashConfig(hash_fc="sha1")  # datatrove's xxhash path hands str to an xxhash that wants bytes


def exact_stages(reader, work: Path) -> tuple[list[Stage], list]:
    """datatrove's exact dedup (signature -> find -> filter, removed ids to work/removed-exact), and
    the pipeline head that yields the rows it keeps (what near dedup reads)."""
    config = ExactDedupConfig(content_getter=exact_key, hash_config=SHA1)
    sigs, dups = str(work / "exact-sigs"), str(work / "exact-dups")
    removed = RemovedIds(str(work / "removed-exact"))
    return [
        Stage("exact-1", [reader, ExactDedupSignature(sigs, config)]),
        Stage("exact-2", [ExactFindDedups(sigs, dups, config)], 1),
        Stage("exact-3", [reader, ExactDedupFilter(dups, config, exclusion_writer=removed)]),
    ], [reader, ExactDedupFilter(dups, config)]


def near_stages(head: list, work: Path, shingle: int, buckets: int, rows: int, seed: int) -> list[Stage]:
    """datatrove's MinHash dedup (signatures -> buckets -> clusters -> filter) of the rows `head`
    yields; removed ids, with their cluster, to work/removed-near."""
    config = MinhashConfig(
        n_grams=shingle,
        num_buckets=buckets,
        hashes_per_bucket=rows,
        seed=seed,
        norm_config=TextNormConfig(norm_numbers=False),
        hash_config=SHA1,
    )
    sigs, found, clusters = str(work / "mh-sigs"), str(work / "mh-buckets"), str(work / "mh-remove")
    removed = RemovedIds(str(work / "removed-near"))
    return [
        Stage("near-1", [*head, MinhashDedupSignature(sigs, config, language=WordRuns())]),
        Stage("near-2", [MinhashDedupBuckets(sigs, found, config=config)], buckets),
        Stage("near-3", [MinhashDedupCluster(found, clusters, config=config, save_cluster_id=True)], 1),
        Stage("near-4", [*head, MinhashDedupFilter(clusters, load_cluster_ids=True, exclusion_writer=removed)]),
    ]
