"""The Magpie paper's filters for synthesised conversations (Xu et al. 2024, "Magpie: Alignment Data
Synthesis from Scratch by Prompting Aligned LLMs with Nothing", section 2.2 / appendix: length,
repetition, incomplete, refusal, language, then dedup), as pure functions over text.

Each filter returns None (keep) or a reason; `first_failing` applies them in the order of FILTERS,
so a removed row is counted once, under the first filter that removed it.

incomplete  a turn that did not end at the model's end of turn (finish_reason other than "stop":
            truncated by max_new_tokens, or no end-of-turn token) or is empty
length      words (whitespace-separated) of each user turn and each answer within the set bounds
repetition  1 - distinct word n-grams / all word n-grams (n = 3): the share of repeated n-grams;
            a turn above max_repetition is a degenerate loop
refusal     an answer opening with a refusal (the project's own phrase list, REFUSAL_MARKERS, in
            the spirit of the paper's refusal removal), checked in its first 200 characters
language    py3langid's language of each user turn must be one of `languages`
dedup       (`dedup_key`) exact match of the normalised first user turn (lower case, letters and
            digits only, single spaces); MinHash / embedding near-dedup is `posttrain curate`'s
"""

from __future__ import annotations

import re
from collections.abc import Sequence

FILTERS = ("incomplete", "length", "repetition", "refusal", "language", "dedup")

# Openings of a refusal, lower case; matched at the start of any sentence in the answer's head.
REFUSAL_MARKERS = (
    "i'm sorry",
    "i am sorry",
    "i apologize",
    "i cannot",
    "i can't",
    "i can not",
    "i'm unable",
    "i am unable",
    "i won't",
    "i will not",
    "as an ai",
    "as a language model",
)


def repetition_ratio(text: str, n: int = 3) -> float:
    """Share of the word n-grams that repeat an earlier one (0 for text shorter than n words)."""
    words = text.split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def is_refusal(text: str) -> bool:
    head = text[:200].lower().replace("\u2019", "'")
    sentences = re.split(r"(?<=[.!?])\s+|\n+", head)
    return any(s.strip().startswith(REFUSAL_MARKERS) for s in sentences)


def language_of(text: str) -> str:
    import py3langid

    return py3langid.classify(text)[0]


def dedup_key(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text.lower()).split())


def incomplete(turns: Sequence[dict]) -> str | None:
    """turns: {role, content, finish_reason}; None when each ended at its end of turn."""
    for turn in turns:
        if turn.get("finish_reason") != "stop":
            return f"{turn['role']} turn ended by {turn.get('finish_reason')!r}, not its end of turn"
        if not turn["content"].strip():
            return f"{turn['role']} turn is empty"
    return None


def length(turns: Sequence[dict], bounds: dict[str, tuple[int, int]]) -> str | None:
    """bounds: role -> (min words, max words)."""
    for turn in turns:
        low, high = bounds[turn["role"]]
        words = len(turn["content"].split())
        if not low <= words <= high:
            return f"{turn['role']} turn has {words} words, outside [{low}, {high}]"
    return None


def repetition(turns: Sequence[dict], max_ratio: float) -> str | None:
    for turn in turns:
        ratio = repetition_ratio(turn["content"])
        if ratio > max_ratio:
            return f"{turn['role']} turn repeats {ratio:.2f} of its 3-grams (> {max_ratio})"
    return None


def refusal(turns: Sequence[dict]) -> str | None:
    return next(
        (f"{t['role']} turn is a refusal" for t in turns if t["role"] == "assistant" and is_refusal(t["content"])), None
    )


def language(turns: Sequence[dict], languages: Sequence[str] | None) -> str | None:
    if not languages:
        return None
    for turn in turns:
        if turn["role"] == "user" and (found := language_of(turn["content"])) not in languages:
            return f"user turn is in {found!r}, not one of {list(languages)}"
    return None


def apply_filters(rows: Sequence[dict], settings: dict) -> tuple[list[dict], dict[str, int]]:
    """(kept rows, removed count per filter); rows carry `turns` ({role, content, finish_reason}).

    settings: bounds (role -> (min, max) words), max_repetition, languages (None: any), and
    skip (names of filters turned off)."""
    removed = dict.fromkeys(FILTERS, 0)
    seen: set[str] = set()
    kept = []
    for row in rows:
        name = first_failing(row["turns"], settings)
        if name is None and "dedup" not in settings.get("skip", ()):
            key = dedup_key(row["turns"][0]["content"])
            name = "dedup" if key in seen else None
            seen.add(key)
        if name is None:
            kept.append(row)
        else:
            removed[name] += 1
    return kept, removed


def first_failing(turns: Sequence[dict], settings: dict) -> str | None:
    skip = set(settings.get("skip", ()))
    checks = {
        "incomplete": lambda: incomplete(turns),
        "length": lambda: length(turns, settings["bounds"]),
        "repetition": lambda: repetition(turns, settings["max_repetition"]),
        "refusal": lambda: refusal(turns),
        "language": lambda: language(turns, settings.get("languages")),
    }
    return next((name for name, check in checks.items() if name not in skip and check() is not None), None)
