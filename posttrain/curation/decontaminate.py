"""N-gram decontamination of a training file against evaluation items (Tulu 3, Lambert et al. 2024,
section 2.1; the rule of open-instruct's decontamination/search.py).

    posttrain curate decontaminate --set input=train.jsonl --set 'eval_tasks=[gsm8k=test.jsonl, arithmetic]' \\
        --out clean.jsonl

Tokens: the text lower-cased, split into Unicode word runs (regex \\w+), punctuation and
whitespace dropped, so "Hello, World!" is [hello, world]. For an eval item e of m tokens and a
training row d: coverage(e, d) = (number of e's tokens that lie inside some n-gram of e which also
occurs in d) / m. match="coverage" removes d when coverage(e, d) > threshold for some e
(Tulu 3: n=8, 0.5); match="any" removes d when any n-gram of any e occurs in d (GPT-3 style). An
eval item shorter than n tokens counts as one n-gram: it must occur whole. Training text is the
row's user turns by default (train_text=prompt, as Tulu 3 indexed prompts); eval text is the item's
prompt (question). The eval n-grams are held in memory (evaluation sets are small); the training
file is streamed shard by shard. Where this departs from open-instruct: its tokens are spaCy's
(punctuation marks are tokens too) and its training text sits in Elasticsearch; here words are
regex word runs and the index is in process, so no server and no spaCy model download.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from posttrain.config.base import Positive, Ratio, Section

NAME = "decontaminate"
HELP = "remove training rows that overlap evaluation items by n-grams (Tulu 3's 8-gram rule)"
_WORD = re.compile(r"\w+")
EVAL_PROMPT_FIELDS = ("prompt", "question", "problem", "instruction", "input", "goal", "text", "messages")


class Recipe(Section):
    input: str  # training data: a .jsonl/.parquet file or a folder of shards
    out: str  # same format as input (a folder for a folder)
    eval_tasks: list[str] = []  # built-in `posttrain eval` tasks: NAME, or NAME=DATA_PATH for file-backed ones
    eval_files: list[str] = []  # evaluation files (.jsonl/.json/.parquet/.csv): the prompt of each row
    n: Positive = 8
    match: Literal["coverage", "any"] = "coverage"
    threshold: Ratio = Field(0.5, lt=1)  # coverage must exceed it (open-instruct's match_threshold)
    train_text: Literal["prompt", "all", "response"] = "prompt"


def tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngram_keys(words: list[str], n: int) -> list[int]:
    """The hash of every n-gram in order (hash of the word tuple: stable within one process,
    which is all an in-memory index needs)."""
    return [hash(tuple(words[i : i + n])) for i in range(len(words) - n + 1)]


class EvalIndex:
    """Eval items' n-grams -> the items holding them; the match rule on one training text."""

    def __init__(self, items: list[tuple[str, str, str]], n: int, match: str, threshold: float):
        """items: (source, item id, text)."""
        self.n, self.match, self.threshold = n, match, threshold
        self.items, self.keys, self.index = [], [], {}
        self.short_lengths: set[int] = set()
        for source, item_id, text in items:
            words = tokens(text)
            if not words:
                continue
            size = min(n, len(words))
            if size < n:
                self.short_lengths.add(size)
            keys = ngram_keys(words, size)
            self.items.append((source, item_id, text, len(words), size))
            self.keys.append(keys)
            for key in set(keys):
                self.index.setdefault(key, []).append(len(self.items) - 1)

    def best_match(self, text: str) -> tuple[int, float] | None:
        """(item, coverage) of the eval item this text matches best, if it matches the rule."""
        words = tokens(text)
        present = set(ngram_keys(words, self.n))
        for size in self.short_lengths:
            present.update(ngram_keys(words, size))
        candidates = {i for key in present for i in self.index.get(key, ())}
        best = None
        for i in candidates:
            score = self.coverage(i, present)
            if best is None or score > best[1]:
                best = (i, score)
        if best is None or (self.match == "coverage" and best[1] <= self.threshold):
            return None
        return best

    def coverage(self, item: int, present: set[int]) -> float:
        length, size = self.items[item][3], self.items[item][4]
        covered = [False] * length
        for start, key in enumerate(self.keys[item]):
            if key in present:
                covered[start : start + size] = [True] * size
        return sum(covered) / length


def eval_items(recipe: Recipe) -> list[tuple[str, str, str]]:
    """(source, item id, prompt text) of every eval item named by the recipe."""
    from posttrain.errors import UserError

    items = [item for spec in recipe.eval_tasks for item in _task_items(spec)]
    for path in recipe.eval_files:
        items += _file_items(path)
    if not items:
        raise UserError(
            "decontaminate: no evaluation items: give eval_tasks=[NAME or NAME=PATH] and/or eval_files=[PATH]"
        )
    return items


def _task_items(spec: str) -> list[tuple[str, str, str]]:
    from posttrain.eval.tasks.builtin import resolve_task
    from posttrain.eval.tasks.documents import load_documents

    name, _, data = spec.partition("=")
    task = resolve_task(name, data=data or None)
    docs, _ = load_documents(task)
    return [(task.name, str(doc["_id"]), str(doc.get("prompt") or doc.get("text") or "")) for doc in docs]


def _file_items(path: str) -> list[tuple[str, str, str]]:
    from posttrain.data.sources import read_rows
    from posttrain.errors import row_error

    items = []
    for number, row in read_rows(path):
        value = next((row[f] for f in EVAL_PROMPT_FIELDS if row.get(f) is not None), None)
        if isinstance(value, list):
            value = "\n".join(
                m["content"]
                for m in value
                if isinstance(m, dict) and m.get("role") == "user" and isinstance(m.get("content"), str)
            )
        if not isinstance(value, str) or not value.strip():
            raise row_error(path, number, "prompt", f"no prompt text (looked for {', '.join(EVAL_PROMPT_FIELDS)})")
        items.append((str(path), str(number), value))
    return items


def run(recipe: Recipe) -> int:
    from posttrain.curation.rows import PassSpec, RowRef, per_row, row_text, run_pass

    index = EvalIndex(eval_items(recipe), recipe.n, recipe.match, recipe.threshold)
    print(f"decontaminate: {len(index.items)} eval items, {len(index.index)} distinct {recipe.n}-grams")

    @per_row
    def judge(where: RowRef, row: dict) -> dict | None:
        found = index.best_match(row_text(row, recipe.train_text, where.shard, where.number))
        if found is None:
            return None
        source, item_id, text, _, _ = index.items[found[0]]
        return {
            "filter": "decontaminate",
            "eval_source": source,
            "eval_item": item_id,
            "coverage": round(found[1], 4),
            "eval_text": text[:200],
        }

    from posttrain.data.jobs import file_sha256

    settings = {
        **recipe.model_dump(exclude={"input", "out"}),
        "eval_files_sha256": [file_sha256(path) for path in recipe.eval_files],
    }
    manifest = run_pass(
        PassSpec(
            recipe.input, recipe.out, NAME, settings, desc="decontaminate", extra={"eval_items": len(index.items)}
        ),
        judge,
    )
    counts = manifest["counts"]
    print(
        f"decontaminate: kept {counts['kept']} of {counts['rows_in']} rows; removed report: "
        f"{manifest['removed_report']}"
    )
    return 0
