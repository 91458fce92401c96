"""Tokenised examples -> model batches: right padding, and packing without cross-document attention.

An example is a pair of equal-length lists (input_ids, labels), labels -100 where no loss is taken;
labels are aligned with input_ids (the model shifts: logits at t predict labels[t + 1]).

Training batches never need an attention mask: padding is on the right and attention is causal,
so a real token never sees a pad. Packed rows carry per-document position ids instead; transformers
turns position ids that restart at 0 into a block-diagonal causal mask when no attention mask is
given (masking_utils.find_packed_sequence_indices), so documents in a row never attend to each
other and each document sees exactly the positions it would see alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch

from posttrain.data.chat import (
    IGNORE_INDEX as IGNORE,  # one definition of the ignored label
)


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)


def collate_padded(examples: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a micro-batch to its longest example."""
    width = max(len(e) for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    for row, ex in enumerate(examples):
        input_ids[row, : len(ex)] = torch.tensor(ex.input_ids)
        labels[row, : len(ex)] = torch.tensor(ex.labels)
    return {"input_ids": input_ids, "labels": labels, "num_tokens": _count(examples)}


@dataclass
class PackedRow:
    """A fixed-length row built from whole documents (or, in pre-training, document pieces)."""

    input_ids: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    position_ids: list[int] = field(default_factory=list)

    def add(self, input_ids: list[int], labels: list[int]) -> None:
        # The first token of a segment has nothing of its own document before it: predicting it
        # from the previous document would be a cross-document loss, so it is masked.
        self.input_ids += input_ids
        self.labels += [IGNORE] + labels[1:]
        self.position_ids += list(range(len(input_ids)))

    def __len__(self) -> int:
        return len(self.input_ids)


def collate_packed(rows: list[PackedRow], pad_id: int, length: int) -> dict[str, torch.Tensor]:
    """Stack packed rows, padding each to `length`; the padding is a segment of its own."""
    input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), length), IGNORE, dtype=torch.long)
    position_ids = torch.zeros((len(rows), length), dtype=torch.long)
    for r, row in enumerate(rows):
        n = len(row)
        input_ids[r, :n] = torch.tensor(row.input_ids)
        labels[r, :n] = torch.tensor(row.labels)
        position_ids[r, :n] = torch.tensor(row.position_ids)
        position_ids[r, n:] = torch.arange(length - n)
    return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids, "num_tokens": _count(rows)}


def _count(items) -> torch.Tensor:
    """Real (non-pad) tokens, for throughput; kept on the CPU so reading it never syncs a GPU."""
    return torch.tensor(sum(len(x) for x in items))


def pack_examples(examples: Iterable[Example], length: int) -> list[PackedRow]:
    """Greedy first-fit in order: whole examples, never split (SFT packing). Examples longer
    than `length` must have been rejected before."""
    rows: list[PackedRow] = []
    current = PackedRow()
    for ex in examples:
        if len(current) + len(ex) > length and len(current) > 0:
            rows.append(current)
            current = PackedRow()
        current.add(ex.input_ids, ex.labels)
    if len(current):
        rows.append(current)
    return rows
