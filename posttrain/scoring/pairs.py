"""From scored completions to preference pairs and rejection-sampled SFT data: pure functions.

best_vs_worst    chosen = the highest score, rejected = the lowest (SimPO / SELM / Tulu 3 on-policy
                 data; the first of equal scores wins the tie-break, so the result is deterministic)
margin_pairs     every ordered pair whose score difference is at least `margin` (more pairs per
                 prompt, each one clear)
per_source_pair  FuseChat-3.0: best vs worst drawn from one source model only, the source whose
                 response scores highest overall, so chosen and rejected share a style and the pair
                 teaches quality rather than which model wrote it
A prompt yields nothing when fewer than two completions are valid (scored) or all valid scores
tie; the callers count both.
majority_answer  the most frequent final answer (self-consistency, Wang et al. 2023), None on a tie:
                 rejection sampling without a reference keeps the completions that agree with it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

PAIR_MODES = ("best-worst", "margin", "per-source")


@dataclass(frozen=True)
class Candidate:
    score: float | None  # None: not validly scored (it never enters a pair)
    source: str | None = None


def _valid(cands: Sequence[Candidate], indices: Sequence[int] | None = None) -> list[int]:
    indices = range(len(cands)) if indices is None else indices
    return [i for i in indices if cands[i].score is not None]


def why_no_pair(cands: Sequence[Candidate]) -> str | None:
    """'too_few' (fewer than two valid), 'ties' (all valid scores equal), or None."""
    valid = _valid(cands)
    if len(valid) < 2:
        return "too_few"
    if len({cands[i].score for i in valid}) == 1:
        return "ties"
    return None


def best_vs_worst(cands: Sequence[Candidate], indices: Sequence[int] | None = None) -> tuple[int, int] | None:
    valid = _valid(cands, indices)
    if len(valid) < 2:
        return None
    best = max(valid, key=lambda i: cands[i].score)  # max/min keep the first of equals
    worst = min(valid, key=lambda i: cands[i].score)
    return None if cands[best].score == cands[worst].score else (best, worst)


def margin_pairs(cands: Sequence[Candidate], margin: float) -> list[tuple[int, int]]:
    if margin <= 0:
        raise ValueError("margin must be > 0 (a pair needs a difference)")
    valid = _valid(cands)
    return [(i, j) for i in valid for j in valid if cands[i].score - cands[j].score >= margin]


def per_source_pair(cands: Sequence[Candidate]) -> tuple[int, int] | None:
    by_source: dict[str | None, list[int]] = {}
    for i in _valid(cands):
        by_source.setdefault(cands[i].source, []).append(i)
    pairs = [pair for indices in by_source.values() if (pair := best_vs_worst(cands, indices))]
    return max(pairs, key=lambda pair: cands[pair[0]].score, default=None)


def majority_answer(answers: Sequence[str | None]) -> str | None:
    counts = Counter(a for a in answers if a is not None).most_common(2)
    if not counts or (len(counts) == 2 and counts[0][1] == counts[1][1]):
        return None
    return counts[0][0]
