"""REFUEL: multi-turn rollouts against a scripted user, REBEL's regression on the turn-h pair.
The tasks need a later user turn: the number to judge, or the colour to name, comes in the second
turn. The learning test starts from the tiny model SFT'd on the colour task (right for half of the
held-out dialogues) and shows REFUEL raising the success rate (the README's bold run)."""

import json
import random

import pytest
from transformers import AutoModelForCausalLM

from posttrain.config.recipe import load_recipe
from posttrain.errors import UserError
from posttrain.model.load import load_tokenizer
from posttrain.rewards import build_reward_set
from posttrain.stages import refuel, sft
from tests.integration.conftest import write_jsonl

OPENER = "I will give you a number in my next message. Say ready."
COLOURS = ["red", "blue", "green", "yellow"]
COLOUR_OPENERS = [
    "I will name a colour in my next message. Say ready.",
    "Next I tell you a colour. Say ready.",
    "Get ready for a colour. Say ready.",
    "A colour comes in my next message. Say ready.",
    "Listen for the colour I name next. Say ready.",
    "I am thinking of a colour. Say ready.",
]


def _dialogue(n):
    return {"turns": [OPENER, f"The number is {n}. Is it even or odd?"], "reference": "even" if n % 2 == 0 else "odd"}


def _recipe(model, data, *extra):
    return load_recipe(
        None,
        [
            f"model={model}",
            f"data=[{data}]",
            "grpo.rewards=[{name: exact_match}]",
            "grpo.prompts_per_step=8",
            "grpo.max_new_tokens=4",
            "grpo.temperature=1.0",
            "train.micro_batch_size=8",
            *extra,
        ],
    )


def test_rows_without_user_turns_are_one_line_errors(tmp_path, tiny_dir):
    data = write_jsonl(tmp_path / "d.jsonl", [_dialogue(3), {"turns": [], "reference": "odd"}])
    with pytest.raises(UserError, match=r"row 2: field 'turns': no user turns"):
        refuel.run(_recipe(tiny_dir, data, "train.max_steps=1"), output_dir=str(tmp_path / "run"))


def test_refuel_runs_on_pairs_of_turn_h_responses(tmp_path, tiny_dir):
    data = write_jsonl(tmp_path / "d.jsonl", [_dialogue(n) for n in range(100, 116)])
    held_out = write_jsonl(tmp_path / "h.jsonl", [_dialogue(n) for n in range(200, 204)])
    # a length term beside the verifier, so the untrained model's returns differ within pairs
    rewards = "grpo.rewards=[{name: exact_match}, {name: 'tests.integration.test_grpo:short_answer', verifier: false}]"
    refuel.run(
        _recipe(
            tiny_dir,
            data,
            rewards,
            "train.max_steps=4",
            "train.lr=1e-3",
            "grpo.updates_per_batch=2",
            f"data.eval_sources=[{held_out}]",
        ),
        output_dir=str(tmp_path / "run"),
    )
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


def _colour_dialogue(n):
    opener, colour = COLOUR_OPENERS[n % len(COLOUR_OPENERS)], COLOURS[n // len(COLOUR_OPENERS)]
    return {"turns": [opener, f"The colour is {colour}. Which colour did I say?"], "reference": colour}


@pytest.mark.slow  # 40 SFT steps and 30 REFUEL batches: 88 s on the idle 2-core machine, up to 6 min loaded
def test_refuel_raises_the_colour_tasks_success(tmp_path, tiny_default_dir):
    numbers = list(range(len(COLOURS) * len(COLOUR_OPENERS)))
    random.Random(0).shuffle(numbers)
    held_out = write_jsonl(tmp_path / "held_out.jsonl", [_colour_dialogue(n) for n in numbers[:8]])
    train = [_colour_dialogue(n) for n in numbers[8:]]
    write_jsonl(
        tmp_path / "sft.jsonl",
        [
            {
                "messages": [
                    {"role": "user", "content": d["turns"][0]},
                    {"role": "assistant", "content": "ready"},
                    {"role": "user", "content": d["turns"][1]},
                    {"role": "assistant", "content": d["reference"]},
                ]
            }
            for d in train
        ],
    )
    sft.run(
        load_recipe(
            None,
            [
                f"model={tiny_default_dir}",
                f"data=[{tmp_path / 'sft.jsonl'}]",
                "train.micro_batch_size=16",
                "train.max_steps=40",
                "train.lr=1e-3",
                "train.warmup_steps=5",
            ],
        ),
        output_dir=str(tmp_path / "sft"),
    )
    model = tmp_path / "sft" / "final"
    recipe = _recipe(
        model,
        write_jsonl(tmp_path / "train.jsonl", train),
        "grpo.prompts_per_step=64",
        "train.micro_batch_size=64",
        "grpo.max_new_tokens=5",
        "train.max_steps=30",
        "train.lr=1e-4",
        "train.warmup_steps=3",
        "train.schedule=constant",
        "train.eval_every=10",
        f"data.eval_sources=[{held_out}]",
    )
    before = refuel.dialogue_success(
        AutoModelForCausalLM.from_pretrained(model),
        load_tokenizer(str(model)),
        refuel.load_dialogues(recipe.data.eval_sources),
        build_reward_set(recipe.grpo.rewards),
        max_new_tokens=5,
    )
    refuel.run(recipe, output_dir=str(tmp_path / "refuel"))
    rows = [json.loads(line) for line in (tmp_path / "refuel" / "metrics.jsonl").read_text().splitlines()]
    sampled = [r["success"] for r in rows if "success" in r]
    held = [r["eval_success"] for r in rows if "eval_success" in r]
    print(f"held-out greedy success {before} -> {held}; sampled success {[round(v, 2) for v in sampled]}")
    # measured: held-out 0.5 -> 0.625 at batches 10, 20 and 30; sampled 0.54 (first 5) -> 0.64 (last 5)
    assert before == 0.5 and held[-1] >= before + 0.1, (before, held)
    assert sum(sampled[-5:]) / 5 >= sum(sampled[:5]) / 5 + 0.05, sampled
