"""Shared-prefix layout for preference pairs: the prompt is computed once for both responses.

A pair's rows (chosen, rejected, and SELM's reference sample) share their prompt. Instead of one
row per response, each pair becomes ONE row laid out as

    prefix | last prompt token + chosen | last prompt token + rejected [| last prompt token + sample]

Every response segment repeats the last prompt token (as in prefix-sharing DPO, Wang et al. 2024,
"Accelerating Direct Preference Optimization with Prefix Sharing"): the first response token is
predicted from that token's hidden state, which must have seen the prompt and nothing of another
response. Each segment sees the prefix and itself only (model/segment_mask.py builds the mask from
`segment_ids`), and its position ids continue from the prefix as in its own row, so every
response token gets exactly the log-prob of the separate forward.

`segment_ids` [B, T]: 0 for the prefix, k for the k-th response segment (1 chosen, 2 rejected,
3 sample), -1 for padding; the label at t belongs to the segment of token t.
"""

from __future__ import annotations

import torch

from posttrain.data.batching import IGNORE, Example, collate_padded


def shared_length(rows: list[Example]) -> int:
    """Tokens common to every row that no row labels: the prompt, computed once."""
    first = rows[0]
    n = min(len(r) for r in rows)
    k = 0
    while k < n and all(r.input_ids[k] == first.input_ids[k] and r.labels[k] == IGNORE for r in rows):
        k += 1
    return k


def pair_layout(rows: list[Example]) -> tuple[Example, list[int], list[int]]:
    """(row, position_ids, segment_ids) of one pair's responses in the shared-prefix layout."""
    keep = max(shared_length(rows) - 1, 0)  # the last shared token starts every segment
    ids, labels = list(rows[0].input_ids[:keep]), [IGNORE] * keep
    positions, segments = list(range(keep)), [0] * keep
    for k, row in enumerate(rows, start=1):
        tail_ids, tail_labels = row.input_ids[keep:], row.labels[keep:]
        ids += tail_ids
        # A segment's first token is the last shared one (unlabelled) or, with nothing shared, the
        # row's first token (never scored): its label would be predicted across segments.
        labels += [IGNORE] + tail_labels[1:]
        positions += list(range(keep, len(row)))
        segments += [k] * len(tail_ids)
    return Example(ids, labels), positions, segments


def collate_shared(groups: list[list[Example]], pad_id: int) -> dict[str, torch.Tensor]:
    """One right-padded row per group (a pair's responses), with position and segment ids."""
    laid = [pair_layout(rows) for rows in groups]
    batch = collate_padded([row for row, _, _ in laid], pad_id)
    width = batch["input_ids"].shape[1]
    position_ids = torch.zeros_like(batch["input_ids"])
    segment_ids = torch.full_like(batch["input_ids"], -1)
    for r, (row, positions, segments) in enumerate(laid):
        n = len(row)
        position_ids[r, :n] = torch.tensor(positions)
        position_ids[r, n:] = torch.arange(positions[-1] + 1, positions[-1] + 1 + width - n)
        segment_ids[r, :n] = torch.tensor(segments)
    batch["position_ids"], batch["segment_ids"] = position_ids, segment_ids
    return batch
