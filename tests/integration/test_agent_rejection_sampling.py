"""Rejection sampling in an agent environment (AgentGen / RFT style): the tiny model's success rate
in the grid game rises after SFT on its own successful trajectories.

The untrained tiny model almost never replies with a move digit, so it first learns the reply
format from a uniformly random (valid) policy's episodes, successes and failures alike: that
model walks at random. Then it samples 8 episodes per training task, keeps the successful ones
(`trajectories_keep: success`), is fine-tuned on them, and is evaluated again on held-out tasks.
Measured numbers: docs/agents.md."""

import json
import random

import pytest

from posttrain.agents.grid import GridEnv
from posttrain.agents.rollout import RolloutSettings, run_episodes, sft_rows
from posttrain.eval.engine import run_task
from posttrain.eval.tasks.builtin import resolve_task
from posttrain.generation.backend import Completion, HFBackend
from posttrain.generation.prompter import Prompter
from posttrain.model.inference import has_own_chat_template, load_model_and_tokenizer

GRID = ["max_turns=3", "temperature=1.0"]


class RandomMoves:
    """A backend whose every reply is a random move digit (the format warm-up's policy)."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def complete(self, requests, desc="", seed=None, logprobs=False):
        return [Completion(str(self.rng.randint(1, 4)), "stop", 1) for _ in requests]


def _sft(model: str, rows: list[dict], root, name: str) -> str:
    from posttrain.config.recipe import load_recipe
    from posttrain.stages import sft

    data = root / f"{name}.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = load_recipe(
        None,
        [
            f"model={model}",
            f"data=[{data}]",
            "train.micro_batch_size=16",
            "train.max_steps=60",
            "train.lr=3e-3",
            "train.warmup_steps=5",
            "log.tensorboard=false",
        ],
    )
    sft.run(recipe, output_dir=str(root / name))
    return str(root / name / "final")


def _run(model: str, *overrides: str):
    loaded, tokenizer = load_model_and_tokenizer(model)
    backend = HFBackend(loaded, tokenizer, batch_size=64, show_progress=False, is_chat=has_own_chat_template(tokenizer))
    return run_task(resolve_task("agent_grid", [*GRID, *overrides]), backend)


@pytest.mark.slow
def test_success_rate_rises_after_sft_on_own_successes(tiny_dir, tmp_path):
    held_out = ["size=96", "episodes=4", "data_seed=0"]
    untrained = _run(str(tiny_dir), *held_out).values()
    _, tokenizer = load_model_and_tokenizer(str(tiny_dir))
    warm_up = run_episodes(
        RandomMoves(0), Prompter(tokenizer, True), GridEnv, GridEnv.tasks(200, 7), RolloutSettings(max_turns=3)
    )
    walker = _sft(str(tiny_dir), sft_rows(warm_up, successful_only=False), tmp_path, "format")
    before = _run(walker, *held_out).values()
    trajectories = tmp_path / "successes.jsonl"
    sampled = _run(walker, "size=48", "episodes=8", "data_seed=1", f"trajectories={trajectories}").values()
    kept = [json.loads(line) for line in trajectories.read_text().splitlines()]
    assert kept and all(row["success"] for row in kept) and len(kept) == round(sampled["success_rate"] * 48 * 8)
    after = _run(_sft(walker, kept, tmp_path, "rejection"), *held_out).values()
    print(f"\nuntrained {untrained}\nformat warm-up {before}\nsampled {sampled} kept {len(kept)}\nafter {after}")
    assert untrained["success_rate"] < before["success_rate"]
    assert after["success_rate"] > before["success_rate"]
