"""GRPO with the `code` execution reward (every completion run in the sandbox) on the tiny model,
from the CLI: the wiring, not learning - the tiny model writes no working code, so its rewards
are ~0. Each completion's outcome is written; the logged reward per step is their mean; a
prompt row without tests is recorded as "no tests" and the run goes on."""

import json

import pytest

from tests.integration.conftest import run_cli, write_jsonl

ROWS = [
    {
        "task_id": "add",
        "prompt": "Write a Python function add(a, b) returning a + b.",
        "tests": ["assert add(1, 2) == 3", "assert add(0, 0) == 0"],
    },
    {
        "task_id": "square",
        "prompt": "Write a Python function square(x) returning x * x.",
        "tests": ["assert square(3) == 9"],
    },
    {
        "task_id": "neg",
        "prompt": "Complete negate(x).",
        "code_prompt": "def negate(x):\n",
        "entry_point": "negate",
        "test": "def check(candidate):\n    assert candidate(2) == -2\n",
    },
    {"task_id": "untested", "prompt": "Write any Python function."},
]


@pytest.mark.slow
def test_grpo_runs_with_the_code_reward(tmp_path, tiny_default_dir):
    write_jsonl(tmp_path / "prompts.jsonl", ROWS)
    outcomes = tmp_path / "outcomes.jsonl"
    recipe = tmp_path / "grpo.yaml"
    recipe.write_text(
        f"model: {tiny_default_dir}\ndata: [{tmp_path / 'prompts.jsonl'}]\n"
        "train: {micro_batch_size: 16, max_steps: 2, lr: 1.0e-4}\n"
        f"grpo:\n  rewards: [{{name: code, options: {{timeout_s: 3, workers: 4, outcomes: '{outcomes}'}}}}]\n"
        "  group_size: 4\n  prompts_per_step: 4\n  max_new_tokens: 24\n  temperature: 1.0\n"
    )
    run_cli("grpo", recipe, "--output-dir", tmp_path / "run")
    lines = [json.loads(line) for line in outcomes.read_text().splitlines()]
    assert len(lines) == 2 * 4 * 4  # steps x prompts x group
    by_task = {}
    for line in lines:
        by_task.setdefault(line["task_id"], []).append(line)
    assert set(by_task) == {"add", "square", "neg", "untested"}
    assert {line["status"] for line in by_task["untested"]} == {"no tests"}
    for task_id in ("add", "square", "neg"):
        for line in by_task[task_id]:
            assert line["status"] in {"passed", "error", "timeout", "memory", "killed"}
            assert line["reward"] == float(line["status"] == "passed") and (line["passed"] or line["reason"])
    metrics = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    rewards = [r["reward/code"] for r in metrics if "reward/code" in r]
    assert len(rewards) == 2
    for step, logged in enumerate(rewards):
        batch = lines[step * 16 : (step + 1) * 16]
        assert logged == pytest.approx(sum(line["reward"] for line in batch) / 16)
    print(f"code reward per step: {rewards}; statuses: {sorted({(l['task_id'], l['status']) for l in lines})}")
