"""The `agent` eval task kind end to end through the engine: generated or file tasks, metrics
(success rate, progress rate, turns, invalid actions, environment errors) worked out by hand,
per-row failures recorded with their reason, trajectories written as SFT rows, an external
environment by entry point, and bad input as one line (exit 2) from the CLI."""

import json

import pytest

from posttrain.cli import main
from posttrain.eval.engine import run_task
from posttrain.eval.tasks.builtin import resolve_task
from tests.unit.agents.policies import ScriptedPolicy, greedy_grid


@pytest.fixture(scope="module")
def tokenizer(tiny_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_dir)


def test_generated_grid_tasks_solved_by_a_right_policy(tokenizer):
    result = run_task(resolve_task("agent_grid", ["size=6"]), ScriptedPolicy(greedy_grid, tokenizer))
    assert result.values()["success_rate"] == 1.0 and result.values()["progress_rate"] == 1.0
    assert result.values()["env_errors"] == 0 and result.values()["invalid_actions"] == 0
    assert len(result.samples) == 6 and result.samples[0].prompt.startswith("system: Reach the goal.")


def test_task_file_rows_failures_and_trajectories(tokenizer, tmp_path):
    data = tmp_path / "grid.jsonl"
    rows = [
        {"start": [0, 0], "goal": [0, 2]},  # 2 moves: solved in 2 turns
        {"start": [0, 0], "goal": [2, 2]},  # 4 moves, 2 turns allowed: progress 1/2
        {"start": [0, 0], "goal": [7, 7], "note": "off the grid"},  # the environment raises
        {"start": [1, 1], "goal": [1, 0], "system": "Row says hi."},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "traj.jsonl"
    policy = ScriptedPolicy(greedy_grid, tokenizer)
    task = resolve_task(
        {
            "name": "grid_file",
            "kind": "agent",
            "environment": "grid",
            "data": str(data),
            "max_turns": 2,
            "trajectories": str(out),
        }
    )
    result = run_task(task, policy)
    values = result.values()
    assert values["success_rate"] == pytest.approx(2 / 4) and values["progress_rate"] == pytest.approx(2.5 / 4)
    assert values["env_errors"] == 1 and values["turns"] == pytest.approx((2 + 2 + 0 + 1) / 4)
    broken = result.samples[2]
    assert broken.extracted.startswith("reset: ValueError: 'goal' must be") and broken.scores["success_rate"] == 0
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["messages"][1]["content"] for r in written] == ["You 0,0. Goal 0,2.", "You 1,1. Goal 1,0."]
    assert written[1]["messages"][0] == {"role": "system", "content": "Row says hi."}  # the row's system message
    assert all(m["role"] == "assistant" for m in (r["messages"][-1] for r in written))


def test_an_external_environment_by_entry_point(tokenizer, tmp_path):
    from posttrain.errors import UserError

    spec = {
        "name": "count",
        "kind": "agent",
        "environment": "tests.unit.agents.test_environments:Counter",
        "environment_options": {"target": 2},
        "max_turns": 3,
    }
    with pytest.raises(UserError, match="needs data"):  # Counter makes no tasks of its own
        run_task(resolve_task(spec), ScriptedPolicy(lambda m: "1", tokenizer))
    data = tmp_path / "count.jsonl"
    data.write_text("{}\n{}\n")
    counting = ScriptedPolicy(lambda m: str(int(m[-1]["content"]) + 1), tokenizer)
    stuck = ScriptedPolicy(lambda m: "1", tokenizer)  # says 1 forever: half way to 2
    assert run_task(resolve_task({**spec, "data": str(data)}), counting).values()["success_rate"] == 1.0
    values = run_task(resolve_task({**spec, "data": str(data)}), stuck).values()
    assert values["success_rate"] == 0.0 and values["progress_rate"] == 0.5 and values["turns"] == 3


def test_episodes_need_sampling(tokenizer):
    from posttrain.errors import UserError

    with pytest.raises(UserError, match="temperature > 0"):
        run_task(resolve_task("agent_grid", ["episodes=4"]), ScriptedPolicy(greedy_grid, tokenizer))


def test_bad_input_from_the_cli_is_one_line(tiny_dir, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"start": [0, 0], "goal": [0, 1]}\nnot json\n')
    assert (
        main(
            [
                "eval",
                str(tiny_dir),
                "--tasks",
                "agent_grid",
                "--data",
                f"agent_grid={bad}",
                "--output-dir",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert "bad.jsonl" in err and "row 2" in err and len(err.splitlines()) == 1
    assert main(["eval", str(tiny_dir), "--tasks", "agent_grid", "--set", "environment=gridd"]) == 2
    assert "environment 'gridd': not a built-in one" in capsys.readouterr().err
