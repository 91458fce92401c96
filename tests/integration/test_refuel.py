"""REFUEL: multi-turn rollouts against a scripted user, REBEL's regression on the turn-h pair.
The tasks need a later user turn: the number to judge, or the colour to name, comes in the second
turn. The learning test starts from a tiny model SFT'd on the colour task's format (its greedy
answers name the right colour for about half of the held-out dialogues) and shows REFUEL raising
the success rate."""

import json
import random

import pytest
from transformers import AutoModelForCausalLM

from posttrain.config import load_recipe
from posttrain.errors import UserError
from posttrain.model.load import load_tokenizer
from posttrain.rewards import build_reward_set
from posttrain.stages import refuel, sft
from tests.integration.conftest import write_jsonl

OPENER = "I will give you a number in my next message. Say ready."
COLOURS = ["red", "blue", "green", "yellow"]
COLOUR_OPENERS = ["I will name a colour in my next message. Say ready.", "Next I tell you a colour. Say ready.",
                  "Get ready for a colour. Say ready.", "A colour comes in my next message. Say ready.",
                  "Listen for the colour I name next. Say ready.", "I am thinking of a colour. Say ready."]


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


def _colour_dialogues(pairs):
    return [{"turns": [opener, f"The colour is {colour}. Which colour did I say?"], "reference": colour}
            for opener, colour in pairs]


@pytest.fixture(scope="module")
def colour_task(tmp_path_factory, tiny_default_dir):
    """24 (opener, colour) dialogues, 8 held out; the tiny model SFT'd for 40 steps on the other 16."""
    root = tmp_path_factory.mktemp("refuel-colour")
    pairs = [(opener, colour) for colour in COLOURS for opener in COLOUR_OPENERS]
    random.Random(0).shuffle(pairs)
    held_out, train = _colour_dialogues(pairs[:8]), _colour_dialogues(pairs[8:])
    write_jsonl(root / "sft.jsonl", [{"messages": [
        {"role": "user", "content": d["turns"][0]}, {"role": "assistant", "content": "ready"},
        {"role": "user", "content": d["turns"][1]}, {"role": "assistant", "content": d["reference"]}]} for d in train])
    sft.run(load_recipe(None, [f"model={tiny_default_dir}", f"data=[{root / 'sft.jsonl'}]", "train.micro_batch_size=16",
                               "train.max_steps=40", "train.lr=1e-3", "train.warmup_steps=5"]),
            output_dir=str(root / "sft"))
    return root, write_jsonl(root / "train.jsonl", train), write_jsonl(root / "held_out.jsonl", held_out), held_out
