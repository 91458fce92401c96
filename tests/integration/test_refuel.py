"""REFUEL: multi-turn rollouts against a scripted user, REBEL's regression on the turn-h pair.
The task needs a later user turn: the number to judge comes in the second turn."""

import json
import random

import pytest
from transformers import AutoModelForCausalLM

from posttrain.config import load_recipe
from posttrain.errors import UserError
from posttrain.eval.backend import HFBackend
from posttrain.model.load import load_tokenizer
from posttrain.stages import refuel, sft
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


def _success(model_dir, rows):
    """Greedy dialogues with the scripted user; the final answer judged by exact match."""
    tok = load_tokenizer(str(model_dir))
    backend = HFBackend(AutoModelForCausalLM.from_pretrained(model_dir).eval(), tok, batch_size=64, show_progress=False)
    from posttrain.data.chat import tokenize_prompt
    from posttrain.eval.backend import GenerationRequest

    def generate(prompts, turn):
        ids = backend.generate_tokens([GenerationRequest(tokenize_prompt(tok, p), 4) for p in prompts])
        return [t.strip() for t in tok.batch_decode(ids, skip_special_tokens=True)]

    histories = [[] for _ in rows]
    refuel.play(generate, histories, [r["turns"] for r in rows], [0] * len(rows))
    return sum(h[-1]["content"].lower() == r["reference"] for h, r in zip(histories, rows)) / len(rows)


COLOURS = ["red", "blue", "green", "black", "white", "pink", "brown", "grey"]


def _colour_dialogue(i, colour):
    """The answer is only in the second user turn."""
    return {"turns": [f"Game {i}: I will tell you a colour in my next message. Say ready.",
                      f"The colour is {colour}. Which colour did I say?"], "reference": colour}


@pytest.mark.slow
def test_refuel_raises_multi_turn_success(tmp_path, tiny_default_dir):
    rng = random.Random(0)
    rows = [_colour_dialogue(i, rng.choice(COLOURS)) for i in range(600)]
    test, train = rows[:100], rows[100:]
    chats = [{"messages": [{"role": "user", "content": d["turns"][0]}, {"role": "assistant", "content": "ready"},
                           {"role": "user", "content": d["turns"][1]}, {"role": "assistant", "content": d["reference"]}]}
             for d in train]
    sft.run(load_recipe(None, [f"model={tiny_default_dir}", f"data=[{write_jsonl(tmp_path / 'sft.jsonl', chats)}]",
                               "train.micro_batch_size=16", "train.max_steps=20", "train.lr=1e-3",
                               "train.warmup_steps=5"]), output_dir=str(tmp_path / "sft"))
    before = _success(tmp_path / "sft" / "final", test)
    data = write_jsonl(tmp_path / "dialogues.jsonl", train)
    refuel.run(_recipe(tmp_path / "sft" / "final", data, "grpo.prompts_per_step=32", "train.micro_batch_size=32",
                       "train.max_steps=30", "train.lr=3e-4", "train.schedule=constant"),
               output_dir=str(tmp_path / "refuel"))
    after = _success(tmp_path / "refuel" / "final", test)
    print(f"held-out dialogue success {before:.2f} -> {after:.2f}")
    assert after >= before + 0.1, (before, after)
