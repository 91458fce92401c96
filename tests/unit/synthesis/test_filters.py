"""Magpie's filters on hand-made turns: each removes what it names, counted under the first filter
that fails, and dedup keeps the first of equal normalised queries."""

import pytest

from posttrain.synthesis.filters import (
    FILTERS,
    apply_filters,
    dedup_key,
    is_refusal,
    language_of,
    repetition_ratio,
)

SETTINGS = {"bounds": {"user": (2, 20), "assistant": (1, 30)}, "max_repetition": 0.3, "languages": ["en"]}


def conv(query, answer="Fine, here it is.", query_end="stop", answer_end="stop"):
    return {
        "turns": [
            {"role": "user", "content": query, "finish_reason": query_end},
            {"role": "assistant", "content": answer, "finish_reason": answer_end},
        ]
    }


def test_repetition_ratio_by_hand():
    assert repetition_ratio("a b c a b c") == pytest.approx(1 - 3 / 4)  # abc bca cab abc
    assert repetition_ratio("one two") == 0.0 and repetition_ratio("a b c d") == 0.0
    assert repetition_ratio("x x x x x x") == pytest.approx(1 - 1 / 4)


def test_refusal_language_and_dedup_key():
    assert is_refusal("I'm sorry, but I can't help with that.") and is_refusal("Sure. As an AI, I cannot.")
    assert is_refusal("I\u2019m sorry.") and not is_refusal("The answer is 4. Sorry for the delay.")
    assert language_of("How many apples are left in the box?") == "en"
    assert language_of("Quelle est la capitale de la France et pourquoi est-elle si belle ?") == "fr"
    assert dedup_key("  What is 2+2?? ") == dedup_key("what is 2 + 2") == "what is 2 2"


def test_each_filter_removes_its_own_and_counts_it_once():
    rows = [
        conv("How many apples are in two boxes?"),  # kept
        conv("Explain how sums of numbers work", query_end="length"),  # incomplete (query cut)
        conv("What is ten plus one?", answer="", answer_end="stop"),  # incomplete (empty answer)
        conv("Hi"),  # length (1 word < 2)
        conv("count count count count count count count"),  # repetition (and too short? no)
        conv("Please write me a story about a dragon?", answer="I'm sorry, I cannot do that."),  # refusal
        conv("Quelle est la capitale de la France et pourquoi est-elle si belle ?"),  # language
        conv("how many apples are in two boxes"),  # dedup of the first
    ]
    kept, removed = apply_filters(rows, SETTINGS)
    assert kept == [rows[0]]
    assert removed == {"incomplete": 2, "length": 1, "repetition": 1, "refusal": 1, "language": 1, "dedup": 1}
    assert list(removed) == list(FILTERS)


def test_skipped_filters_and_any_language():
    rows = [conv("Hi"), conv("Hi"), conv("Quelle est la capitale de la France et pourquoi est-elle si belle ?")]
    kept, removed = apply_filters(rows, {**SETTINGS, "languages": None, "skip": ["length", "dedup"]})
    assert kept == rows and sum(removed.values()) == 0
