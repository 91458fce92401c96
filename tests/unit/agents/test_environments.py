"""The built-in environments' rules, worked by hand: moves, walls, invalid replies, progress as
the fraction of the distance covered (grid) or of the subgoals reached (calculator), the
calculator tool's arithmetic and its refusal of anything but arithmetic."""

import pytest

from posttrain.agents.calculator import CalculatorEnv, evaluate
from posttrain.agents.grid import GridEnv
from posttrain.agents.registry import environment_factory
from posttrain.errors import UserError


def test_grid_moves_walls_and_progress():
    env = GridEnv(size=3)
    assert env.reset({"start": [0, 0], "goal": [1, 2]}) == "You 0,0. Goal 1,2."
    wall = env.step("1")  # up from row 0: a wall, no progress
    assert wall.observation.startswith("Wall.") and not wall.done and wall.info["progress"] == 0.0
    invalid = env.step("go left please")
    assert invalid.info["valid"] is False and invalid.observation.startswith("Invalid.")
    right = env.step("I pick 4 now")  # the first digit 1-4 in the reply counts
    assert right.observation == "You 0,1. Goal 1,2." and right.info["progress"] == pytest.approx(1 / 3)
    assert env.step("2").info["progress"] == pytest.approx(2 / 3)
    last = env.step("4")
    assert last.done and last.reward == 1.0 and last.info["success"] and last.info["progress"] == 1.0


def test_grid_tasks_are_seeded_and_in_range():
    tasks = GridEnv.tasks(20, seed=3)
    assert tasks == GridEnv.tasks(20, seed=3) and tasks != GridEnv.tasks(20, seed=4)
    for t in tasks:
        distance = abs(t["start"][0] - t["goal"][0]) + abs(t["start"][1] - t["goal"][1])
        assert 1 <= distance <= 2 and all(0 <= v < 3 for v in t["start"] + t["goal"])
    with pytest.raises(ValueError, match="'goal' must be"):
        GridEnv().reset({"start": [0, 0], "goal": [5, 0]})


def test_calculator_tool_and_subgoals():
    env = CalculatorEnv()
    assert env.reset({"question": "What is 12 * 3 + 4?", "answer": 40, "subgoals": [36, 40]}) == "What is 12 * 3 + 4?"
    tool = env.step("calc: 12*3")
    assert tool.observation == "= 36" and not tool.done and tool.info["progress"] == 0.5
    assert env.step("hmm").info["valid"] is False
    assert env.step("calc: import os").observation.startswith("Calculator error")
    end = env.step("thinking\nANSWER: 40")
    assert end.done and end.reward == 1.0 and end.info == {"valid": True, "success": True, "progress": 1.0}
    env.reset({"question": "q", "answer": 40, "subgoals": [36, 40]})
    wrong = env.step("answer: 41")
    assert wrong.done and wrong.reward == 0.0 and wrong.info["progress"] == 0.0


def test_calculator_evaluates_arithmetic_only():
    assert evaluate("(2 + 3) * -4 / 2") == -10
    for bad in ("__import__('os')", "2 ** 99999", "1 / 0", "x + 1", "9" * 40 + " * 2"):
        with pytest.raises(ValueError):
            evaluate(bad)


class Counter:
    """An external environment (entry point): counts to `target`."""

    instructions = "Say the next number."

    def __init__(self, target: int = 2):
        self.target = target

    def reset(self, task):
        self.n = 0
        return "0"

    def step(self, action):
        from posttrain.agents.environment import Step

        self.n += action.strip() == str(self.n + 1)
        return Step(
            str(self.n), float(self.n == self.target), self.n == self.target, {"progress": self.n / self.target}
        )


def test_environment_lookup():
    assert isinstance(environment_factory("grid")(), GridEnv)
    env = environment_factory("tests.unit.agents.test_environments:Counter", {"target": 3})()
    assert isinstance(env, Counter) and env.target == 3
    with pytest.raises(UserError, match="not a built-in one"):
        environment_factory("gridd")
    with pytest.raises(UserError, match="cannot import"):
        environment_factory("no_such_module:Env")
    with pytest.raises(UserError, match="bad options"):
        environment_factory("grid", {"width": 3})
    with pytest.raises(UserError, match="size must be at least 2"):
        environment_factory("grid", {"size": 1})
