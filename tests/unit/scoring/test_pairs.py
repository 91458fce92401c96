import pytest

from posttrain.scoring.pairs import (
    Candidate,
    best_vs_worst,
    majority_answer,
    margin_pairs,
    per_source_pair,
    why_no_pair,
)


def cands(*scores, sources=None):
    sources = sources or [None] * len(scores)
    return [Candidate(s, src) for s, src in zip(scores, sources)]


def test_best_vs_worst_skips_invalid_and_breaks_ties_by_position():
    assert best_vs_worst(cands(0.2, None, 0.9, 0.9, -1.0)) == (2, 4)
    assert best_vs_worst(cands(1.0, 1.0)) is None and why_no_pair(cands(1.0, 1.0)) == "ties"
    assert best_vs_worst(cands(1.0, None)) is None and why_no_pair(cands(1.0, None)) == "too_few"


def test_margin_pairs_are_every_ordered_pair_at_least_the_margin_apart():
    assert margin_pairs(cands(3.0, 1.0, 2.5, None), margin=0.5) == [(0, 1), (0, 2)] + [(2, 1)]
    assert margin_pairs(cands(1.0, 1.2), margin=0.5) == []
    with pytest.raises(ValueError):
        margin_pairs(cands(1.0, 2.0), margin=0)


def test_per_source_pair_stays_within_the_source_of_the_best_response():
    # source a: 5 vs 1; source b: 9 vs 8 -> b holds the best response overall (9): pair (9, 8), not (9, 1)
    got = per_source_pair(cands(5.0, 1.0, 9.0, 8.0, sources=["a", "a", "b", "b"]))
    assert got == (2, 3)
    # the best source has a single response: the other source's pair is used
    assert per_source_pair(cands(5.0, 1.0, 9.0, sources=["a", "a", "b"])) == (0, 1)
    assert per_source_pair(cands(5.0, 9.0, sources=["a", "b"])) is None


def test_majority_answer_needs_a_strict_majority_of_the_answers_given():
    assert majority_answer(["4", "4", "5", None]) == "4"
    assert majority_answer(["4", "5"]) is None and majority_answer([None, None]) is None
