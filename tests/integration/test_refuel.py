"""REFUEL: multi-turn rollouts against a scripted user, REBEL's regression on the turn-h pair.
The task needs a later user turn: the number to judge comes in the second turn. (No learning test:
on two-turn tasks SFT'd tiny models' greedy success did not rise within the budgets that fitted,
see the README.)"""

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
    held_out = write_jsonl(tmp_path / "h.jsonl", [_dialogue(n) for n in range(200, 204)])
    # a length term beside the verifier, so the untrained model's returns differ within pairs
    rewards = "grpo.rewards=[{name: exact_match}, {name: 'tests.integration.test_grpo:short_answer', verifier: false}]"
    refuel.run(_recipe(tiny_dir, data, rewards, "train.max_steps=4", "train.lr=1e-3", "grpo.updates_per_batch=2",
                       f"data.eval_sources=[{held_out}]"), output_dir=str(tmp_path / "run"))
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train] == [1, 2, 3, 4] and all(0 <= r["success"] <= 1 for r in train)
    assert {"score_difference", "rewards_margin", "identical_pairs"} <= set(train[0])
    # two updates per batch: the 1st starts at log-ratio 0 (old = current), the 2nd on the same
    # dialogues (same success) from the moved policy with the old log-probs kept
    for first, second in (train[0:2], train[2:4]):
        assert first["rewards_margin"] == pytest.approx(0.0, abs=1e-5)
        assert second["success"] == first["success"] and second["rewards_margin"] != pytest.approx(0.0, abs=1e-5)
    assert [r["eval_success"] for r in rows if "eval_success" in r] == [0.0]  # the untrained model, last step
    sample = json.loads((tmp_path / "run" / "samples.jsonl").read_text().splitlines()[0])
    assert [m["role"] for m in sample["dialogue"]] == ["user", "assistant", "user", "assistant"]

