"""Countdown answers are verified by walking the syntax tree: correct solutions pass, wrong values,
reused or foreign numbers, and anything that is not plain arithmetic fail, and nothing is executed."""

import random

import pytest

from posttrain.rewards.countdown import extract_expression, is_solution, problem, rows


@pytest.mark.parametrize(
    "expression, ok",
    [
        ("(25 - 3) * 2", True),
        ("2 * (25 - 3)", True),
        ("25 * 2 - 3 - 3", False),  # 3 used twice
        ("25 + 19", True),
        ("25 + 20 - 1", False),  # 20 and 1 are not given
        ("(25 - 3) * 2.0", False),
        ("-3 + 47", False),
        ("2 ** 5 + 12", False),
        ("44", True),
        ("25 / 0 + 44", False),
        ("__import__('os').system('true')", False),
        ("(25 - 3) * 2 =", False),
    ],
)
def test_is_solution(expression, ok):
    assert is_solution(expression, [25, 3, 2, 19, 44], 44) is ok


def test_a_lone_number_uses_only_itself():
    assert is_solution("44", [44, 2], 44)
    assert not is_solution("44", [4, 2], 44)


def test_division_is_exact():
    assert is_solution("(7 + 8) / 6 * 4", [7, 8, 6, 4], 10)
    assert not is_solution("7 / 2", [7, 2], 3)


def test_extract_expression():
    assert extract_expression("Let me try. <answer>(25 - 3) * 2</answer>") == "(25 - 3) * 2"
    assert extract_expression("First 25 - 3 = 22.\n22 * 2 = 44\nSo: (25 - 3) * 2 = 44") == "(25 - 3) * 2"
    assert extract_expression("I do not know") is None


def test_generated_problems_are_solvable_and_reproducible():
    rng = random.Random(0)
    for _ in range(200):
        p = problem(rng)
        assert is_solution(p["solution"], p["numbers"], p["target"]), p
    assert rows(5, seed=1) == rows(5, seed=1) != rows(5, seed=2)
