"""The quickstart task: deterministic, train/test disjoint, and its verifier accepts the worked answers."""

import json
import random
import re

import pytest

from posttrain.data.synth import arithmetic as ar


def key_of(question: str) -> tuple[int, str, int]:
    """(a, op, b) parsed back from a question, to check disjointness independently of the generator."""
    numbers = [int(n) for n in ar._INT.findall(question)]
    op = "+" if any(w in question for w in ("+", "plus", "more", "adds", "gets")) else "-"
    return numbers[0], op, numbers[1]


def test_deterministic():
    assert ar.sft_rows(50, seed=3) == ar.sft_rows(50, seed=3)
    assert ar.sft_rows(50, seed=3) != ar.sft_rows(50, seed=4)
    assert ar.eval_rows(50, seed=3) == ar.eval_rows(50, seed=3)
    assert ar.pretrain_rows(20, seed=3) == ar.pretrain_rows(20, seed=3)
    assert ar.problem(random.Random(7)) == ar.problem(random.Random(7))


def test_rows_have_the_documented_shape():
    row = ar.sft_rows(1, seed=0)[0]
    assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
    assert set(ar.eval_rows(1, seed=0)[0]) == {"prompt", "reference"}
    text = ar.pretrain_rows(1, seed=0)[0]["text"]
    assert "<|" not in text and "assistant" not in text


def test_worked_answer_is_scored_correct():
    rng = random.Random(0)
    for _ in range(500):
        question, answer, value = ar.problem(rng)
        assert value >= 0 and ar.extract_final_number(answer) == str(value)
        assert ar.is_correct(answer, str(value))


def test_eval_problems_are_distinct_and_train_excludes_them():
    test = ar.eval_rows(300, seed=1)
    test_keys = {key_of(r["prompt"]) for r in test}
    assert len(test_keys) == 300 == len(ar.eval_keys(300, seed=1)) and test_keys == ar.eval_keys(300, seed=1)
    train = ar.sft_rows(3000, seed=2, exclude=test_keys)
    assert not {key_of(r["messages"][0]["content"]) for r in train} & test_keys


def test_write_quickstart_data_is_disjoint(tmp_path):
    paths = ar.write_quickstart_data(tmp_path, n_pretrain=200, n_sft=2000, n_sft_eval=100, n_test=200, n_rl=500)
    assert set(paths) == {"pretrain", "sft_train", "sft_eval", "test", "rl_prompts"}
    rows = {name: [json.loads(line) for line in p.read_text().splitlines()] for name, p in paths.items()}
    test_keys = {key_of(r["prompt"]) for r in rows["test"]}
    for split in ("sft_train", "sft_eval"):
        assert not {key_of(r["messages"][0]["content"]) for r in rows[split]} & test_keys
    rl_keys = {key_of(r["prompt"]) for r in rows["rl_prompts"]}
    assert len(rl_keys) == 500 and not rl_keys & test_keys
    for r in rows["test"] + rows["rl_prompts"]:
        a, op, b = key_of(r["prompt"])
        assert r["reference"] == str(a + b if op == "+" else a - b)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("47 + 38 = 85. The answer is 85.", "85"),
        ("The answer is -12.", "-12"),
        ("It is 1,234 apples", "1234"),
        ("007", "7"),
        ("The answer is 85", "85"),
        ("no number here", None),
        ("", None),
        ("3 - 5 = -2", "-2"),
        ("from 10-20", "20"),
    ],
)
def test_extract_final_number(text, expected):
    assert ar.extract_final_number(text) == expected


def test_every_worked_step_is_true():
    """Each "x op y [op 1] = z" step of the column method is correct arithmetic."""
    step = re.compile(r"(\d+(?: [+-] \d+)+) = (\d+)")
    rng = random.Random(1)
    for _ in range(1000):
        _, answer, value = ar.problem(rng)
        steps = step.findall(answer)
        assert len(steps) == 3 and steps[-1][1] == str(value)
        for expression, result in steps:
            assert eval(expression) == int(result), answer  # expression is digits and +/- only


def test_answer_format_example():
    p = ar.Problem(47, "+", 38, "What is 47 + 38?")
    assert p.worked_answer == "7 + 8 = 15, carry 1. 4 + 3 + 1 = 8. 47 + 38 = 85. The answer is 85."
    p = ar.Problem(52, "-", 17, "What is 52 - 17?")
    assert p.worked_answer == "12 - 7 = 5, borrow 1. 5 - 1 - 1 = 3. 52 - 17 = 35. The answer is 35."
