"""Llama Guard training rows (Inan et al. 2023): labelled prompts or responses become SFT
conversations whose user turn is the guard prompt (eval/guard.py's format, with the recipe's
taxonomy) and whose assistant turn is the verdict, "safe" or "unsafe" plus the violated codes on
a second line. Training a guard is then `posttrain sft` on the output; `posttrain eval GUARD
--tasks llama_guard` scores it with the same prompt.

    posttrain synth llama_guard --set input=labelled.jsonl [--set classify=response]
                                [--set taxonomy=categories.yaml] --out guard_sft.jsonl

Input rows are read as the llama_guard eval task reads them (formats.guard: prompt, optional
response, label safe/unsafe or 0/1, optional categories); a category code that the taxonomy does
not list is a one-line error naming the row.
"""

from __future__ import annotations

from typing import Literal

from posttrain.config.base import Section

NAME = "llama_guard"
HELP = "Llama Guard SFT rows (guard prompt -> safe / unsafe + categories) from labelled data"


class Recipe(Section):
    input: str  # labelled rows (jsonl, json, csv, parquet)
    out: str  # the SFT conversations (jsonl)
    classify: Literal["prompt", "response"] = "prompt"
    taxonomy: str | None = None  # a YAML/JSON category file; default: Llama Guard 3's S1-S14


def guard_rows(docs: list[dict], classify: str, categories: list[tuple[str, str]], source: str) -> list[dict]:
    """One {"messages": [guard prompt, verdict]} row per labelled document."""
    from posttrain.errors import UserError
    from posttrain.eval.guard import guard_prompt, verdict_text
    from posttrain.eval.tasks.llama_guard import conversation

    codes = {code for code, _ in categories}
    rows = []
    for number, doc in enumerate(docs, start=1):
        unknown = [c for c in doc["categories"] if c not in codes]
        if unknown:
            raise UserError(
                f"{source}: row {number}: field 'categories': {unknown[0]!r} is not in the "
                f"taxonomy ({', '.join(sorted(codes))})"
            )
        unsafe = doc["label"] == "unsafe"
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": guard_prompt(conversation(doc, classify, NAME), categories)},
                    {"role": "assistant", "content": verdict_text(unsafe, doc["categories"] if unsafe else ())},
                ]
            }
        )
    return rows


def run(recipe: Recipe) -> int:
    import json
    from pathlib import Path

    from posttrain.checkpoint.io import write_text_atomically
    from posttrain.eval.tasks.builtin import resolve_task
    from posttrain.eval.tasks.documents import load_documents
    from posttrain.eval.tasks.llama_guard import taxonomy

    task = resolve_task(
        {
            "base": "llama_guard",
            "name": NAME,
            "data": recipe.input,
            "classify": recipe.classify,
            "taxonomy": recipe.taxonomy,
        },
        [],
        None,
    )
    docs, _ = load_documents(task)
    rows = guard_rows(docs, recipe.classify, taxonomy(task), recipe.input)
    write_text_atomically(Path(recipe.out), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    unsafe = sum(r["messages"][1]["content"].startswith("unsafe") for r in rows)
    print(f"{recipe.out}: {len(rows)} guard rows ({unsafe} unsafe, {len(rows) - unsafe} safe)")
    return 0
