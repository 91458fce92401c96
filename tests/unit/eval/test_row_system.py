"""Per-row system messages (Janus): a document's `system` column replaces the task's system message
in the prompt the model actually sees, for every prompting kind; rows without one keep the task's."""

import pytest

from posttrain.errors import UserError
from posttrain.eval.engine import run_task
from posttrain.eval.tasks.builtin import resolve_task
from tests.unit.eval.fakes import ScriptedBackend

ROWS = (
    '{"prompt": "Q0", "reference": "1", "system": "You are a pirate."}\n'
    '{"prompt": "Q1", "reference": "2"}\n'
    '{"prompt": "Q2", "reference": "3", "system": ""}\n'
)


def _prompts(backend, requests) -> list[str]:
    return [backend._text(r.prompt if hasattr(r, "prompt") else r.context) for r in requests]


def test_generation_prompt_holds_the_row_system_message(tiny_model, tmp_path):
    _, tokenizer = tiny_model
    data = tmp_path / "rows.jsonl"
    data.write_text(ROWS)
    backend = ScriptedBackend(tokenizer, answer=lambda prompt: "1")
    task = resolve_task({"name": "janus", "kind": "generation", "data": str(data), "system": "Task default."})
    samples = run_task(task, backend).samples
    seen = _prompts(backend, backend.generated)
    assert "You are a pirate." in seen[0] and "Task default." not in seen[0]
    assert "Task default." in seen[1] and "pirate" not in seen[1]
    assert "Task default." not in seen[2] and "system" not in seen[2]  # "" = no system turn for this row
    assert [s.prompt for s in samples] == seen  # samples.jsonl records the prompt that was sent


@pytest.mark.parametrize(
    "kind,extra",
    [
        ("multiple_choice", ', "choices": ["a", "b"], "answer": 0'),
        ("classification", ', "label": "b"'),
    ],
)
def test_scoring_kinds_use_the_row_system_message(tiny_model, tmp_path, kind, extra):
    _, tokenizer = tiny_model
    data = tmp_path / "rows.jsonl"
    data.write_text(f'{{"prompt": "Q0", "system": "Row rule."{extra}}}\n{{"prompt": "Q1"{extra}}}\n')
    backend = ScriptedBackend(tokenizer)
    spec = {"name": "janus", "kind": kind, "data": str(data), "system": "Task rule.", "format": kind}
    if kind == "classification":
        spec["labels"] = ["a", "b"]
    run_task(resolve_task(spec), backend)
    seen = _prompts(backend, backend.scored)
    half = len(seen) // 2  # one request per choice/label, the first row's first
    assert all("Row rule." in p and "Task rule." not in p for p in seen[:half])
    assert all("Task rule." in p and "Row rule." not in p for p in seen[half:])


def test_a_system_column_that_is_not_text_names_the_document(tiny_model, tmp_path):
    _, tokenizer = tiny_model
    data = tmp_path / "rows.jsonl"
    data.write_text('{"prompt": "Q0", "reference": "1"}\n{"prompt": "Q1", "reference": "2", "system": 7}\n')
    task = resolve_task({"name": "janus", "kind": "generation", "data": str(data)})
    with pytest.raises(UserError, match="document 1: the 'system' column must be text, got int"):
        run_task(task, ScriptedBackend(tokenizer))
