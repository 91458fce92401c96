"""The `code` execution reward: 1.0 only when the row's tests pass in the sandbox; rows in MBPP
and HumanEval layouts; a row without tests, a never-ending answer and a wrong answer score 0 with
their outcome written per completion."""

import json

import pytest

from posttrain.errors import UserError
from posttrain.rewards import build_reward_set, reward_function

MBPP_ROW = {
    "task_id": "add",
    "prompt": "Write add(a, b).",
    "tests": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"],
}
HUMANEVAL_ROW = {
    "task_id": "neg",
    "prompt": "Complete negate.",
    "code_prompt": "def negate(x):\n",
    "entry_point": "negate",
    "test": "def check(candidate):\n    assert candidate(2) == -2\n",
}


def test_scores_and_outcomes_per_completion(tmp_path):
    log = tmp_path / "outcomes.jsonl"
    fn, verifier = reward_function("code", {"timeout_s": 2, "outcomes": str(log)})
    rows = [MBPP_ROW, MBPP_ROW, MBPP_ROW, HUMANEVAL_ROW, HUMANEVAL_ROW, {"task_id": "bare", "prompt": "Hi."}]
    completions = [
        "```python\ndef add(a, b):\n    return a + b\n```",
        "def add(a, b):\n    return a - b",
        "def add(a, b):\n    while True:\n        pass",
        "    return -x\n",
        "```python\ndef negate(x):\n    return x\n```",
        "def anything(): pass",
    ]
    assert verifier
    assert fn.batched(rows, completions) == [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(l["task_id"], l["status"]) for l in lines] == [
        ("add", "passed"),
        ("add", "error"),
        ("add", "timeout"),
        ("neg", "passed"),
        ("neg", "error"),
        ("bare", "no tests"),
    ]
    assert "AssertionError" in lines[1]["reason"] and lines[5]["reward"] == 0.0


def test_one_completion_through_the_reward_set():
    rewards = build_reward_set(
        [
            type(
                "Term",
                (),
                {"name": "code", "label": None, "weight": 2.0, "verifier": None, "options": {"timeout_s": 2}},
            )()
        ]
    )
    scores = rewards.score(MBPP_ROW, "def add(a, b):\n    return a + b")
    assert scores == {"code": 1.0} and rewards.total(scores) == 2.0 and rewards.correct(scores)


def test_bad_options_and_tests_are_one_line_errors():
    with pytest.raises(UserError, match=r"reward 'code': unknown option\(s\) \['timeout'\]"):
        reward_function("code", {"timeout": 3})
    fn, _ = reward_function("code")
    with pytest.raises(UserError, match="'tests' must be a list of assert lines"):
        fn({"tests": "assert True"}, "x = 1")
