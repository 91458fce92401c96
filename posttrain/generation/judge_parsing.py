"""Reading a judge's grade from its reply text: the one parser behind `posttrain score`'s judge
scorer (rewards/judge.py, single mode) and `posttrain eval`'s judge-graded tasks (judge_grade),
so a reply counts as graded, or as unparsed, the same way in both."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# MT-Bench's own patterns first ("[[7]]", then "[7]"); then "Rating: 7" and "7/10" as judges write
# them; last a reply that is nothing but the number (what "Answer with one number" asks for).
_RATING_PATTERNS = (
    re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]"),
    re.compile(r"\[\s*(\d+(?:\.\d+)?)\s*\]"),
    re.compile(r"rating\s*[:=]?\s*(\d+(?:\.\d+)?)", re.IGNORECASE),
    re.compile(r"(\d+(?:\.\d+)?)\s*/\s*10\b"),
    re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[.!]?\s*$"),
)


def parse_rating(reply: str, low: float = 1.0, high: float = 10.0) -> float | None:
    """The judge's rating: the LAST match of the first pattern that matches at all (a judge may quote
    the format's example before giving its own), or None when none matches or it is outside
    [low, high]."""
    for pattern in _RATING_PATTERNS:
        found = pattern.findall(reply or "")
        if found:
            value = float(found[-1])
            return value if low <= value <= high else None
    return None


@dataclass(frozen=True)
class Rating:
    """A judge's grade of one answer, or why there is none (an unparsed reply, a failed request)."""

    value: float | None
    problem: str | None = None


def expected_grade(grades: Sequence[str], probs: Sequence[float]) -> float:
    """sum_k grade_k * P(grade_k): smoother than the most likely grade."""
    return float(sum(float(g) * p for g, p in zip(grades, probs)))


def rating_from_text(text: str) -> Rating:
    value = parse_rating(text)
    if value is None:
        return Rating(None, f"unparsed judge reply: {text.strip()[:120]!r}")
    return Rating(value)
