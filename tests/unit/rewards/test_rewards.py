"""Reward functions on hand-made completions, the registry, weights and user functions."""

import pytest

from posttrain.errors import UserError
from posttrain.rewards import RewardSet, RewardTerm, build_reward_set, reward_function
from posttrain.rewards.math import as_fraction, math_answer
from posttrain.rewards.tasks import countdown, ifeval
from posttrain.rewards.text import exact_match, exploration, format_match


def user_reward(sample, completion, bonus=0.0):
    """A user function reached by dotted path."""
    return len(completion) + bonus


def test_math_answer_numbers_fractions_boxed():
    assert math_answer({"reference": "1000"}, "so the answer is 1,000.") == 1.0
    assert math_answer({"reference": "0.5"}, "we get \\boxed{\\frac{1}{2}}") == 1.0
    assert math_answer({"reference": "3/4"}, "#### 0.75") == 1.0
    assert math_answer({"reference": "\\boxed{x+1}"}, "\\boxed{x + 1}") == 1.0
    assert math_answer({"reference": "7"}, "I think 8") == 0.0
    assert math_answer({"reference": "7"}, "no idea") == 0.0
    assert as_fraction("-0.25") == as_fraction("-1/4")


def test_countdown_checks_numbers_and_target():
    sample = {"numbers": [3, 5, 7], "target": 22}
    assert countdown(sample, "<answer>3 * 5 + 7</answer>") == 1.0
    assert countdown(sample, "<answer>5 * 5 - 3</answer>") == 0.0  # 5 used twice
    assert countdown(sample, "nothing") == 0.0
    with pytest.raises(UserError):
        countdown({"target": 1}, "1 + 1")


def test_ifeval_all_instructions_must_hold():
    sample = {"instruction_id_list": ["punctuation:no_comma", "change_case:english_lowercase"], "kwargs": [{}, {}]}
    assert ifeval(sample, "all lower and no commas") == 1.0
    assert ifeval(sample, "all lower, with a comma") == 0.0
    with pytest.raises(UserError):
        ifeval({"instruction_id_list": ["no:such"], "kwargs": [{}]}, "x")


def test_exact_match_normalises_case_and_period():
    assert exact_match({"reference": "even"}, " Even.") == 1.0
    assert exact_match({"reference": "even"}, "odd") == 0.0


def test_format_and_exploration():
    assert format_match({}, "<think>hmm</think> <answer>4</answer>") == 1.0
    assert format_match({}, "<answer>4</answer>") == 0.0
    text = "step one\nstep two\n\nstep three\n<answer>4</answer>"
    assert exploration({}, text, max_steps=6) == 0.5
    assert exploration({}, text, max_steps=2) == 1.0


def test_registry_options_and_user_functions():
    fn, verifier = reward_function("format", {"pattern": "^yes"})
    assert fn({}, "yes sir") == 1.0 and not verifier
    with pytest.raises(UserError, match="unknown option"):
        reward_function("math", {"alpha": 10})
    fn, verifier = reward_function("tests.unit.rewards.test_rewards:user_reward", {"bonus": 1.0})
    assert fn({}, "abc") == 4.0 and verifier
    fn, _ = reward_function("tests.unit.rewards.test_rewards.user_reward")
    assert fn({}, "ab") == 2
    with pytest.raises(UserError):
        reward_function("nosuchmodule:fn")
    with pytest.raises(UserError):
        reward_function("nodots")


def test_reward_set_weights_and_accuracy():
    rewards = RewardSet(
        [RewardTerm("math", 10.0, math_answer, True), RewardTerm("explore", 0.1, lambda s, c: 1.0, False)]
    )
    scores = rewards.score({"reference": "4"}, "The answer is 4")
    assert scores == {"math": 1.0, "explore": 1.0}
    assert rewards.total(scores) == pytest.approx(10.1) and rewards.correct(scores)
    wrong = rewards.score({"reference": "4"}, "5")
    assert rewards.total(wrong) == pytest.approx(0.1) and not rewards.correct(wrong)


def test_build_from_recipe_entries():
    from posttrain.config.recipe import GrpoSection

    section = GrpoSection(
        rewards=[{"name": "math", "weight": 10}, {"name": "format", "label": "fmt", "options": {"pattern": "answer"}}]
    )
    rewards = build_reward_set(section.rewards)
    assert [t.label for t in rewards.terms] == ["math", "fmt"]
    with pytest.raises(UserError, match="share a label"):
        build_reward_set(GrpoSection(rewards=[{"name": "math"}, {"name": "math"}]).rewards)


def test_batched_terms_are_called_once_per_batch():
    calls = []

    def length(sample, completion):
        return float(len(completion))

    def batched(samples, completions):
        calls.append(len(completions))
        return [float(len(c)) for c in completions]

    length.batched = batched
    rewards = RewardSet([RewardTerm("math", 1.0, math_answer, True), RewardTerm("len", 0.5, length, False)])
    scores = rewards.score_all([{"reference": "4"}] * 3, ["4", "five", "The answer is 4"])
    assert calls == [3]
    assert scores == [{"math": 1.0, "len": 1.0}, {"math": 0.0, "len": 4.0}, {"math": 1.0, "len": 15.0}]
    assert rewards.score({"reference": "4"}, "4") == scores[0]
