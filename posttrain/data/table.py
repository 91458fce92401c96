"""Tokenised examples held as flat int32 arrays, not as Python lists.

A list of 50,000 Example objects costs two Python lists per row and a Python int per token above
256 (about 36 bytes a token); the same tokens as flat int32 arrays cost 4 bytes a token, and when
the arrays are a memory-mapped cache entry they are file pages the kernel can drop and re-read
instead of process memory. An item is built only when it is indexed (a batch being collated), as
the same Example an in-memory list would hold, so batches, the data order and exact resume are
unchanged.

Subsets (the held-out split, a shuffled order) and concatenations (several sources) are views too:
they hold indices, never copies of the tokens.
"""

from __future__ import annotations

import bisect
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from posttrain.data.batching import Example


class LazySequence(Sequence):
    """A read-only sequence whose items are made on access; equal to any sequence with equal items."""

    def select(self, indices: Sequence[int]) -> Subset:
        return Subset(self, indices)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self.select(range(len(self))[i])
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        return self._item(i % len(self))

    @abstractmethod
    def _item(self, i: int) -> Any:
        """The item at index i (0 <= i < len(self)); each kind of view says how it is made."""

    def __eq__(self, other) -> bool:
        if not isinstance(other, (list, tuple, LazySequence)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # mutable-sequence semantics: equal by content


class ExampleTable(LazySequence):
    """Examples stored as flat input_ids/labels arrays plus lengths; row i is the slice
    offsets[i]:offsets[i + 1] of both. The arrays may be memory-mapped (numpy memmap views)."""

    def __init__(self, input_ids: np.ndarray, labels: np.ndarray, lengths: np.ndarray):
        if len(input_ids) != len(labels) or int(lengths.sum()) != len(input_ids):
            raise ValueError("input_ids, labels and lengths do not describe the same rows")
        self.input_ids, self.labels, self.lengths = input_ids, labels, lengths
        self.offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])

    def __len__(self) -> int:
        return len(self.lengths)

    def _item(self, i: int) -> Example:
        start, end = int(self.offsets[i]), int(self.offsets[i + 1])
        return Example(self.input_ids[start:end].tolist(), self.labels[start:end].tolist())

    def documents(self) -> Documents:
        """The rows' input_ids alone (pre-training documents)."""
        return Documents(self)


class Documents(LazySequence):
    """Token lists of an ExampleTable's rows."""

    def __init__(self, table: ExampleTable):
        self.table = table

    def __len__(self) -> int:
        return len(self.table)

    def _item(self, i: int) -> list[int]:
        start, end = int(self.table.offsets[i]), int(self.table.offsets[i + 1])
        return self.table.input_ids[start:end].tolist()


class Subset(LazySequence):
    """base[indices[0]], base[indices[1]], ... without copying the items."""

    def __init__(self, base: Sequence, indices: Sequence[int]):
        self.base, self.indices = base, np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def _item(self, i: int) -> Any:
        return self.base[int(self.indices[i])]


class Chain(LazySequence):
    """Several sequences one after another."""

    def __init__(self, parts: Sequence[Sequence]):
        self.parts = list(parts)
        self.starts = np.cumsum([0] + [len(p) for p in self.parts]).tolist()

    def __len__(self) -> int:
        return self.starts[-1]

    def _item(self, i: int) -> Any:
        part = bisect.bisect_right(self.starts, i) - 1
        return self.parts[part][i - self.starts[part]]


def chain(parts: Sequence[Sequence]) -> Sequence:
    """The parts as one sequence (the part itself when there is one)."""
    return parts[0] if len(parts) == 1 else Chain(parts)


def take(items: Sequence, indices: Sequence[int]) -> Sequence:
    """items at indices: a view for a lazy sequence, else a list as before."""
    if isinstance(items, LazySequence):
        return items.select(indices)
    return [items[i] for i in indices]
