"""Non-instructional data (Xie, Syu and Lee 2024, "Non-instructional Fine-tuning: Enabling
Instruction-Following Capabilities in Pre-trained Language Models without Instruction-Following
Data"): a raw text is split in two halves at a word boundary; a teacher continues
the first half as plain text (completion mode, no chat template, no wording of ours); the first
half becomes the user turn and the continuation the assistant turn.

    posttrain synth non-instructional --set input=web.jsonl --set teacher.model=DIR --out pairs.jsonl

Input: .jsonl/.json/.parquet/.csv rows with a text field (`text_field`), or a .txt file whose
documents are separated by blank lines. The split is at the whitespace nearest the middle of the
text (by characters); each output row records it:
    {"messages": [user: text[:split_offset], assistant: continuation], "source_row": N,
     "split_offset": K, "second_half": text[K:]}  (the original second half, for comparison)
Documents of fewer than `min_words` words are skipped, continuations that are empty or loop
(repetition filter of Magpie) dropped; the manifest counts both. Resumable (run_job).
"""

from __future__ import annotations

import json
from pathlib import Path

from posttrain.config.base import Positive, Ratio, Section
from posttrain.errors import UserError
from posttrain.generation.source import ModelSource, Sampling

NAME = "non-instructional"
HELP = "raw text halves: a teacher continues the first half, the pair becomes a conversation"


class Recipe(Section):
    input: str = ""  # raw text: .jsonl (text_field) or .txt (documents separated by blank lines)
    text_field: str = "text"
    out: str = ""
    teacher: ModelSource = ModelSource()  # openai: endpoint completions (a plain-text continuation)
    sampling: Sampling = Sampling()
    min_words: Positive = 4  # shorter documents cannot be split into two meaningful halves
    max_repetition: Ratio = 0.5
    batch_size: Positive = 16
    seed: int = 0


def split_at_word_boundary(text: str) -> int | None:
    """The offset nearest len(text) / 2 where a run of whitespace starts with text on both sides
    (ties: the earlier one); None when there is none. text[:k] is the first half (never ending in
    whitespace), text[k:] the second."""
    middle = len(text) / 2
    candidates = [
        i
        for i, ch in enumerate(text)
        if ch.isspace() and i > 0 and not text[i - 1].isspace() and text[:i].strip() and text[i:].strip()
    ]
    return min(candidates, key=lambda i: (abs(i - middle), i)) if candidates else None


def read_documents(path: str, field: str) -> list[tuple[int, str]]:
    """(1-based row or paragraph number, text); a wrong file or field is a one-line error."""
    p = Path(path)
    if not path or not p.exists():
        raise UserError(f"{path or 'input'}: input file not found (set input=FILE)")
    if p.suffix == ".txt":
        paragraphs = [part.strip() for part in p.read_text(encoding="utf-8").split("\n\n")]
        docs = [(n, text) for n, text in enumerate(paragraphs, 1) if text]
    else:
        from posttrain.data.sources import read_rows
        from posttrain.errors import row_error

        docs = []
        for number, row in read_rows(path):
            if not isinstance(row.get(field), str):
                raise row_error(path, number, field, "expected the document's text (a string)")
            docs.append((number, row[field]))
    if not docs:
        raise UserError(f"{path}: no documents")
    return docs


class ContinueBatch:
    """process_batch: each document's first half continued by the teacher in completion mode."""

    def __init__(self, backend, recipe: Recipe):
        self.backend, self.recipe = backend, recipe
        self.tokenizer = getattr(backend, "tokenizer", None)
        if self.tokenizer is None:
            raise UserError(
                "synth non-instructional: teacher: completion mode sends token ids: with backend "
                "openai use endpoint=completions"
            )

    def prompt_ids(self, text: str) -> list[int]:
        ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        bos = self.tokenizer.bos_token_id
        return ids if bos is None else [bos, *ids]

    def __call__(self, batch: list[dict], index: int):
        from posttrain.data.jobs import BatchOutput
        from posttrain.generation.backend import GenerationRequest, RequestFailed

        s = self.recipe.sampling
        requests = [
            GenerationRequest(
                self.prompt_ids(d["first"]),
                s.max_new_tokens,
                (),
                s.temperature,
                s.top_p,
                messages=({"role": "user", "content": d["first"]},),
            )
            for d in batch
        ]
        rows, failures = [], []
        for doc, result in zip(batch, self.backend.complete(requests, seed=self.recipe.seed + index)):
            if isinstance(result, RequestFailed):
                failures.append({"row": doc["row"], "error": result.error})
                continue
            rows.append(
                {
                    "messages": [
                        {"role": "user", "content": doc["first"]},
                        {"role": "assistant", "content": result.text.strip()},
                    ],
                    "source_row": doc["row"],
                    "split_offset": doc["offset"],
                    "second_half": doc["second"],
                    "finish_reason": result.finish_reason,
                }
            )
        return BatchOutput(rows, failures)


def run(recipe: Recipe) -> int:
    from posttrain.data.jobs import (
        JobSpec,
        file_sha256,
        manifest_path,
        run_job,
        write_atomically,
    )
    from posttrain.generation.factory import open_backend
    from posttrain.synthesis.filters import repetition_ratio

    if not recipe.out:
        raise UserError("synth non-instructional: no output path (--out PATH or out=PATH)")
    docs = read_documents(recipe.input, recipe.text_field)
    items, too_short = [], 0
    for number, text in docs:
        offset = split_at_word_boundary(text) if len(text.split()) >= recipe.min_words else None
        if offset is None:
            too_short += 1
            continue
        items.append({"row": number, "offset": offset, "first": text[:offset], "second": text[offset:]})
    if not items:
        raise UserError(f"{recipe.input}: all {len(docs)} documents have fewer than {recipe.min_words} words")
    backend = open_backend(recipe.teacher, recipe.batch_size, recipe.seed, "synth non-instructional: teacher")
    out = Path(recipe.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    raw = out.with_name(out.stem + ".raw.jsonl")
    identity = {
        "command": "synth non-instructional",
        "input": {"path": recipe.input, "sha256": file_sha256(recipe.input)},
        "text_field": recipe.text_field,
        "min_words": recipe.min_words,
        "teacher": recipe.teacher.identity(),
        "sampling": recipe.sampling.model_dump(),
        "seed": recipe.seed,
    }
    manifest = run_job(
        items, ContinueBatch(backend, recipe), JobSpec(raw, recipe.batch_size, identity, desc="continue")
    )
    if manifest["counts"]["failed"]:
        print(
            f"posttrain: {manifest['counts']['failed']} documents failed (reasons in {manifest_path(raw).name}); "
            "rerun the same command to retry them"
        )
        return 1
    rows = [json.loads(line) for line in raw.read_text(encoding="utf-8").splitlines()]
    kept = [
        r
        for r in rows
        if r["messages"][1]["content"] and repetition_ratio(r["messages"][1]["content"]) <= recipe.max_repetition
    ]
    counts = {
        "documents": len(docs),
        "too_short": too_short,
        "continued": len(rows),
        "empty_or_repetitive": len(rows) - len(kept),
        "kept": len(kept),
    }
    write_atomically(manifest_path(out), json.dumps({**identity, "raw": str(raw), "counts": counts}, indent=2) + "\n")
    if not kept:
        out.unlink(missing_ok=True)
        raise UserError(f"{out}: every continuation was empty or repetitive ({counts}); see {manifest_path(out).name}")
    write_atomically(out, "".join(json.dumps(r) + "\n" for r in kept))
    print(f"wrote {len(kept)} conversations to {out} ({counts})")
    return 0
