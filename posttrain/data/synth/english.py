"""Simple generated English sentences about numbers: the tiny tokenizer's ordinary words, the
second language's source text, the KV-eviction needle task's haystack."""

from __future__ import annotations

import random

_SUBJECTS = ["the child", "my friend", "a teacher", "the farmer", "our class", "the baker", "a student"]
_VERBS = ["counts", "adds", "writes", "reads", "finds", "needs", "wants", "shares", "sorts", "keeps"]
_OBJECTS = ["numbers", "apples", "books", "coins", "answers", "questions", "problems", "pages", "boxes"]
_TAILS = ["every day", "in the morning", "after school", "at home", "with care", "one by one", "again"]
NUMBER_WORDS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "hundred",
    "sum",
    "difference",
    "total",
    "more",
    "less",
    "equal",
    "even",
    "odd",
    "many",
    "few",
    "first",
    "last",
]


def english_sentences(n: int, rng: random.Random) -> list[str]:
    """Simple English sentences about numbers, so the vocabulary has ordinary words too."""

    def sentence() -> str:
        word = rng.choice(NUMBER_WORDS)
        return (
            f"{rng.choice(_SUBJECTS).capitalize()} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} "
            f"{rng.choice(_TAILS)}. The word {word} is about numbers, "
            f"and {rng.randint(0, 999)} is a number."
        )

    return [sentence() for _ in range(n)]
