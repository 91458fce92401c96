"""Issue 30 item 2: one completion can neither hang nor crash the math verifier, and a verifier
that does not return in time is scored 0 and counted as a "verifier timeout"."""

import subprocess
import sys

import pytest

from posttrain.rewards import RewardSet, RewardTerm
from posttrain.rewards.math import as_fraction, math_answer
from tests.unit.rewards import verifiers_for_tests as fns

HUGE = ["\\boxed{1e99999999}", "The answer is " + "9" * 6000]


@pytest.mark.parametrize("completion", HUGE)
def test_huge_answers_score_zero_without_hanging_or_crashing(completion):
    # In a child process so that the old behaviour (a hang) fails the test instead of stalling it;
    # the limit is a guard against a hang, not a speed requirement.
    code = f"from posttrain.rewards.math import math_answer\nprint(math_answer({{'reference': '42'}}, {completion!r}))"
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the verifier hung on {completion[:30]!r}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "0.0"


def test_number_bounds_keep_ordinary_answers():
    assert as_fraction("1e3") == 1000 and as_fraction("2.5e-1") == as_fraction("1/4")
    assert as_fraction("9" * 6000) is None  # (1e99999999: in the child process above, it hung here)
    assert math_answer({"reference": "1000"}, "\\boxed{1e3}") == 1.0
    assert math_answer({"reference": "9" * 200}, "The answer is " + "9" * 200) == 1.0


def test_a_verifier_over_its_time_is_scored_zero_counted_and_the_next_calls_still_score():
    rewards = RewardSet(
        [RewardTerm("spin", 1.0, fns.spins_forever, True), RewardTerm("length", 1.0, fns.length_is_reference, True)],
        timeout_s=2,
    )
    samples = [{"reference": "3"}, {"reference": "2"}]
    scores = rewards.score_all(samples, ["abc", "abc"])
    assert [s["spin"] for s in scores] == [0.0, 0.0]
    assert [s["length"] for s in scores] == [1.0, 0.0]
    assert rewards.timeouts == 2
    assert rewards.score_all(samples[:1], ["abc"])[0]["length"] == 1.0
    assert rewards.timeouts == 3
