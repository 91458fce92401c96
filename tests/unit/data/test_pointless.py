"""Valid but pointless runs: each check warns exactly when its condition holds, and says why."""

import logging

from posttrain.data import pointless


def test_identical_pairs_only_when_every_pair_is(caplog):
    with caplog.at_level(logging.WARNING):
        assert pointless.identical_pairs("p.jsonl", [("a", "a"), ("b", "b")]).startswith(
            "p.jsonl: every pair has chosen == rejected"
        )
        assert pointless.identical_pairs("p.jsonl", [("a", "a"), ("b", "c")]) is None
        assert pointless.identical_pairs("p.jsonl", []) is None
    assert len(caplog.records) == 1


def test_one_sided_labels():
    assert "every KTO training example is undesirable" in pointless.one_sided_labels([False, False])
    assert pointless.one_sided_labels([True, False, True]) is None


def test_rewards_without_reference():
    samples = [{"prompt": "q", "reference": None}, {"prompt": "r"}]
    assert pointless.rewards_without_reference(["format", "math"], samples).startswith("reward math compares")
    assert pointless.rewards_without_reference(["format", "countdown"], samples) is None
    assert pointless.rewards_without_reference(["math"], samples + [{"reference": "4"}]) is None


def test_zero_advantages():
    assert "every advantage is 0" in pointless.zero_advantages(1, "group_std")
    assert "every advantage is 0" in pointless.zero_advantages(1, "none")
    assert pointless.zero_advantages(2, "group_std") is None


def test_unusable_prompts():
    message = pointless.unusable_prompts("t.jsonl", [(3, "empty prompt"), (5, "empty prompt")], 9)
    assert message == (
        "t.jsonl: 2 of 9 prompts are empty or not text (first: row 3: empty prompt); they are evaluated as they are"
    )
    assert pointless.unusable_prompts("t.jsonl", [], 9) is None
