"""Rows of released benchmark files -> task documents (plain dicts with the fields templates use).

Document fields by task kind:
  generation, hpt: prompt, reference, rationale (a worked solution, when the data has one)
  multiple_choice: prompt, choices (list of answer texts), gold (index of the right one)
  classification: prompt, label
  perplexity: text;  ifeval: prompt, instruction_id_list, kwargs
  pairwise_judge: prompt, baseline (the reference model's answer);  refusal: prompt
  llama_guard: prompt, response (or None), label ("safe"/"unsafe"), categories (violated codes)
  judge_grade: prompt (the first turn), turns (the user turns), category, references (per turn or None)
  agent: the row as it is (format 'environment'): the environment's reset() reads it
Every other column of the row is kept, so a template may use it ({passage}, {subject}, ...).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from posttrain.errors import UserError
from posttrain.eval.tasks.code_formats import CODE_FORMATS

Row = dict[str, Any]
LETTERS = "ABCDEFGHIJ"


class FormatError(ValueError):
    """A row the format cannot read; the loader turns it into a one-line error naming the row."""


def _first(row: Row, names: tuple[str, ...], what: str) -> Any:
    for name in names:
        if row.get(name) is not None:
            return row[name]
    raise FormatError(f"no {what} field (looked for {', '.join(names)})")


def _text(value: Any) -> str:
    if isinstance(value, list):  # chat messages: the last user turn is the prompt
        users = [m.get("content", "") for m in value if isinstance(m, dict) and m.get("role") == "user"]
        return users[-1] if users else ""
    return str(value)


def prompt_reference(row: Row) -> Row:
    prompt = _text(_first(row, ("prompt", "question", "problem", "instruction", "input", "goal"), "prompt"))
    reference = _first(row, ("reference", "answer", "solution", "output", "target"), "reference")
    return {**row, "prompt": prompt, "reference": str(reference)}


def gsm8k(row: Row) -> Row:
    """'answer' is a worked solution with <<48/2=24>> calculator notes, ending '#### 72'."""
    answer = str(_first(row, ("answer",), "answer"))
    if "####" not in answer:
        raise FormatError("'answer' has no '#### <number>' final answer")
    rationale, final = answer.rsplit("####", 1)
    rationale = re.sub(r"<<[^>]*>>", "", rationale).strip()
    return {**row, "prompt": row["question"], "rationale": rationale, "reference": final.strip().replace(",", "")}


def math_problem(row: Row) -> Row:
    from posttrain.rewards.extract import boxed

    solution = str(_first(row, ("solution",), "solution"))
    reference = row.get("answer") or boxed(solution)
    if reference is None:
        raise FormatError("no 'answer' field and no \\boxed{} answer in 'solution'")
    return {**row, "prompt": _first(row, ("problem",), "problem"), "rationale": solution, "reference": str(reference)}


def _gold_index(answer: Any, choices: list[str], labels: list[str] | None = None) -> int:
    """An answer given as an index, a letter (or the choice's label), or the answer text."""
    labels = labels or list(LETTERS[: len(choices)])
    text = str(answer).strip()
    if isinstance(answer, int) and not isinstance(answer, bool):
        index = answer
    elif text in labels:
        index = labels.index(text)
    elif text.isdigit():
        index = int(text) - 1 if labels[0] == "1" else int(text)
    elif text in choices:
        index = choices.index(text)
    else:
        raise FormatError(f"answer {answer!r} is not an index, a letter or one of the choices")
    if not 0 <= index < len(choices):
        raise FormatError(f"answer index {index} is outside the {len(choices)} choices")
    return index


def multiple_choice(row: Row) -> Row:
    choices = [str(c) for c in _first(row, ("choices", "options", "endings"), "choices")]
    answer = _first(row, ("answer", "gold", "label", "answerKey"), "answer")
    question = _first(row, ("question", "prompt", "query"), "question")
    return {**row, "prompt": str(question), "choices": choices, "gold": _gold_index(answer, choices)}


def mmlu(row: Row) -> Row:
    """HF parquet (question, choices, answer index, subject) or the released headerless CSV (read
    by the loader into question, A, B, C, D, answer; the subject from the file name)."""
    if "choices" not in row:
        row = {**row, "choices": [row[letter] for letter in "ABCD"]}
    if row.get("subject") is not None:  # "high_school_us_history" -> "high school us history"
        row = {**row, "subject": str(row["subject"]).replace("_", " ")}
    doc = multiple_choice(row)
    return {**doc, "prompt": doc["prompt"].strip()}  # the harness's {{question.strip()}}


def arc(row: Row) -> Row:
    """Released JSONL: question {stem, choices: [{text, label}]}; HF: question, choices {text, label}."""
    question, choices = row["question"], row.get("choices")
    if isinstance(question, dict):
        question, choices = question["stem"], question["choices"]
    if isinstance(choices, dict):
        texts, labels = list(choices["text"]), list(choices["label"])
    else:
        texts, labels = [c["text"] for c in choices], [c["label"] for c in choices]
    return {
        **row,
        "prompt": question,
        "choices": texts,
        "gold": _gold_index(str(row["answerKey"]), texts, [str(label) for label in labels]),
    }


def boolq(row: Row) -> Row:
    """answer true/false (released JSONL, google/boolq) or label 1/0 (super_glue)."""
    value = row["answer"] if "answer" in row else _first(row, ("label",), "answer")
    return {**row, "prompt": str(row["question"]).rstrip("?"), "label": "yes" if bool(value) else "no"}


def classification(row: Row) -> Row:
    text = _first(row, ("text", "sentence", "prompt", "input", "content"), "text")
    return {**row, "prompt": str(text), "label": _first(row, ("label", "labels", "category"), "label")}


def text(row: Row) -> Row:
    return {**row, "text": str(_first(row, ("text", "content", "page"), "text"))}


def ifeval(row: Row) -> Row:
    kwargs = [{k: v for k, v in (kw or {}).items() if v is not None} for kw in row.get("kwargs") or []]
    ids = list(_first(row, ("instruction_id_list",), "instruction_id_list"))
    if len(kwargs) != len(ids):
        kwargs = kwargs + [{}] * (len(ids) - len(kwargs))
    return {**row, "prompt": row["prompt"], "instruction_id_list": ids, "kwargs": kwargs}


def alpaca_eval(row: Row) -> Row:
    prompt = str(_first(row, ("instruction", "prompt"), "instruction"))
    if row.get("input"):
        prompt = f"{prompt}\n\n{row['input']}"
    return {**row, "prompt": prompt, "baseline": str(_first(row, ("output", "baseline"), "output"))}


def mt_bench(row: Row) -> Row:
    """MT-Bench's question.jsonl: `turns` (the user turns, in order), `category`, optional
    `reference` (one reference answer per turn, or a single string for the first)."""
    turns = row.get("turns")
    if turns is None and row.get("prompt") is not None:
        turns = [row["prompt"]]
    if not isinstance(turns, list) or not turns:
        raise FormatError("field 'turns': no user turns (a non-empty list of user messages is needed)")
    for index, turn in enumerate(turns):
        if not isinstance(turn, str) or not turn.strip():
            raise FormatError(f"field 'turns[{index}]': a user turn must be a non-empty string")
    reference = row.get("reference")
    references = [str(reference)] if isinstance(reference, str) else [str(r) for r in reference or []]
    return {
        **row,
        "prompt": turns[0],
        "turns": turns,
        "category": str(row.get("category") or "general"),
        "references": references or None,
    }


def harmful(row: Row) -> Row:
    names = ("prompt", "goal", "instruction", "behavior", "Behavior", "question", "text")
    return {**row, "prompt": _text(_first(row, names, "prompt"))}


UNSAFE_LABELS = {
    "unsafe": True,
    "1": True,
    "true": True,
    "harmful": True,
    "safe": False,
    "0": False,
    "false": False,
    "unharmful": False,
}


def guard(row: Row) -> Row:
    """A labelled conversation for Llama Guard: `label` safe/unsafe (or 1/0, true/false,
    harmful/unharmful), or BeaverTails' `is_safe`; `categories` a list or comma-separated codes."""
    prompt = _text(_first(row, ("prompt", "question", "instruction", "user"), "prompt"))
    if row.get("label") is None and isinstance(row.get("is_safe"), bool):
        unsafe = not row["is_safe"]
    else:
        label = str(_first(row, ("label", "unsafe"), "label")).strip().lower()
        if label not in UNSAFE_LABELS:
            raise FormatError(f"label {label!r} is not one of safe, unsafe (or 0/1, true/false)")
        unsafe = UNSAFE_LABELS[label]
    categories = row.get("categories") or []
    if isinstance(categories, str):
        categories = [c.strip() for c in categories.split(",") if c.strip()]
    response = row.get("response")
    return {
        **row,
        "prompt": prompt,
        "response": None if response is None else str(response),
        "label": "unsafe" if unsafe else "safe",
        "categories": [str(c) for c in categories],
    }


def summary(row: Row) -> Row:
    source = _first(row, ("article", "document", "dialogue", "text", "prompt"), "document")
    reference = _first(row, ("highlights", "summary", "reference", "target"), "summary")
    return {**row, "prompt": str(source), "reference": str(reference)}


LANGUAGES = {
    "en": "English",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "cs": "Czech",
    "ru": "Russian",
    "zh": "Chinese",
    "ja": "Japanese",
    "it": "Italian",
    "pt": "Portuguese",
    "ro": "Romanian",
}


def translation(row: Row, direction: str | None = None) -> Row:
    """{translation: {de: ..., en: ...}} with format 'translation:de-en', or source/target fields."""
    pair = row.get("translation")
    if isinstance(pair, dict):
        if not direction:
            raise FormatError("rows hold a 'translation' pair: name the direction, e.g. format: translation:de-en")
        source, target = direction.split("-", 1)
        return {
            **row,
            "prompt": pair[source],
            "reference": pair[target],
            "target_language": LANGUAGES.get(target, target),
        }
    target = direction.split("-", 1)[1] if direction else None
    return {
        **row,
        "prompt": str(_first(row, ("source", "src"), "source")),
        "reference": str(_first(row, ("target", "tgt", "reference"), "target")),
        "target_language": row.get("target_language") or LANGUAGES.get(target or "", target or "the target language"),
    }


FORMATS: dict[str, Callable[..., Row]] = {
    "prompt": prompt_reference,
    "gsm8k": gsm8k,
    "math": math_problem,
    "mmlu": mmlu,
    "arc": arc,
    "multiple_choice": multiple_choice,
    "boolq": boolq,
    "classification": classification,
    "text": text,
    "ifeval": ifeval,
    "alpaca_eval": alpaca_eval,
    "harmful": harmful,
    "summary": summary,
    "translation": translation,
    "mt_bench": mt_bench,
    "guard": guard,
    **CODE_FORMATS,
    "environment": dict,  # an agent environment's task row, passed to reset() as it is
}


def row_reader(format_spec: str) -> Callable[[Row], Row]:
    """'name' or 'name:argument' (translation:de-en)."""
    name, _, argument = format_spec.partition(":")
    if name not in FORMATS:
        raise UserError(f"unknown data format '{format_spec}'; formats: {', '.join(sorted(FORMATS))}")
    reader = FORMATS[name]
    return (lambda row: reader(row, argument)) if argument else reader
