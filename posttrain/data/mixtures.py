"""Weighted mixtures of pre-training sources with optional curriculum phases, deterministic by seed.

Continual pre-training papers change the mixture over training (e.g. more target-domain text late,
a replay share of general text throughout). A schedule is a list of (steps, weights) phases; the
source of each next document is drawn with the weights of the phase the current row falls in.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from posttrain.data.batching import PackedRow

Phase = tuple[int | None, dict[str, float]]  # (optimizer steps in the phase or None = rest, weights)


class SourceCursor:
    """Endless walk over one source's documents, reshuffled each pass with a seed-derived order."""

    def __init__(self, docs: Sequence[list[int]], seed: int, name: str):
        self.docs, self.seed, self.name = docs, seed, name
        self.epoch, self.pos, self.order = 0, 0, self._order(0)

    def _order(self, epoch: int) -> list[int]:
        order = list(range(len(self.docs)))
        random.Random(f"{self.seed}/{self.name}/{epoch}").shuffle(order)
        return order

    def next(self) -> list[int]:
        if self.pos == len(self.order):
            self.epoch, self.pos = self.epoch + 1, 0
            self.order = self._order(self.epoch)
        self.pos += 1
        return self.docs[self.order[self.pos - 1]]


def weights_at(schedule: Sequence[Phase], step: int) -> dict[str, float]:
    """The weights in force at an optimizer step (the last phase extends to the end)."""
    start = 0
    for steps, weights in schedule:
        if steps is None or step < start + steps:
            return weights
        start += steps
    return schedule[-1][1]


def mixture_rows(
    sources: dict[str, Sequence[list[int]]],
    schedule: Sequence[Phase],
    rows_per_step: int,
    length: int,
    seed: int,
) -> Iterator[PackedRow]:
    """Endless packed rows of `length` tokens whose documents follow the mixture schedule."""
    pick = random.Random(seed)
    cursors = {name: SourceCursor(docs, seed, name) for name, docs in sources.items()}
    rows_done, current = 0, PackedRow()
    while True:
        weights = weights_at(schedule, rows_done // rows_per_step)
        names = [n for n in sources if weights.get(n, 0) > 0]
        doc = cursors[pick.choices(names, [weights[n] for n in names])[0]].next()
        while doc:
            room = length - len(current)
            piece, doc = doc[:room], doc[room:]
            current.add(piece, list(piece))
            if len(current) == length:
                yield current
                rows_done, current = rows_done + 1, PackedRow()
