"""REFUEL: multi-turn rollouts against a scripted user, REBEL's regression on the turn-h pair.
The task needs a later user turn: the number to judge comes in the second turn. (No learning test:
on this task the tiny model's success stayed at chance after 40 REFUEL steps, see the README.)"""

import json

import pytest

from posttrain.config import load_recipe
from posttrain.errors import UserError
from posttrain.stages import refuel
from tests.integration.conftest import write_jsonl

OPENER = "I will give you a number in my next message. Say ready."


def _dialogue(n):
    return {"turns": [OPENER, f"The number is {n}. Is it even or odd?"], "reference": "even" if n % 2 == 0 else "odd"}


def _recipe(model, data, *extra):
    return load_recipe(None, [f"model={model}", f"data=[{data}]", "grpo.rewards=[{name: exact_match}]",
                              "grpo.prompts_per_step=8", "grpo.max_new_tokens=4", "grpo.temperature=1.0",
                              "train.micro_batch_size=8", *extra])


def test_rows_without_user_turns_are_one_line_errors(tmp_path, tiny_dir):
    data = write_jsonl(tmp_path / "d.jsonl", [_dialogue(3), {"turns": [], "reference": "odd"}])
    with pytest.raises(UserError, match=r"row 2: field 'turns': no user turns"):
        refuel.run(_recipe(tiny_dir, data, "train.max_steps=1"), output_dir=str(tmp_path / "run"))


def test_refuel_runs_on_pairs_of_turn_h_responses(tmp_path, tiny_dir):
    data = write_jsonl(tmp_path / "d.jsonl", [_dialogue(n) for n in range(100, 116)])
    refuel.run(_recipe(tiny_dir, data, "train.max_steps=2", "train.lr=1e-3"), output_dir=str(tmp_path / "run"))
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(0 <= r["success"] <= 1 for r in rows)
    assert {"score_difference", "rewards_margin"} <= set(rows[0])
    assert rows[0]["rewards_margin"] == pytest.approx(0.0, abs=1e-5)  # log-ratios start at 0 (old = current)
    sample = json.loads((tmp_path / "run" / "samples.jsonl").read_text().splitlines()[0])
    assert [m["role"] for m in sample["dialogue"]] == ["user", "assistant", "user", "assistant"]
