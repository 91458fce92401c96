"""Shared-prefix layout for preference pairs: the prompt is computed once for both responses.

A pair's rows (chosen, rejected, and SELM's reference sample) share their prompt. Instead of one
row per response, each pair becomes ONE row laid out as

    prefix | last prompt token + chosen | last prompt token + rejected [| last prompt token + sample]

(prefix sharing for preference training: Wang & Hegde 2024, "Accelerating Direct Preference
Optimization with Prefix Sharing"). Every response segment repeats the last prompt token: the first
response token is predicted from that token's hidden state, which must have seen the prompt and
nothing of another response. Each segment sees the prefix and itself only (model/segment_mask.py builds the mask from
`segment_ids`), and its position ids continue from the prefix as in its own row, so every
response token gets exactly the log-prob of the separate forward.

`segment_ids` [B, T]: 4 * pair + block, block 0 for the pair's prefix and k for its k-th response
(1 chosen, 2 rejected, 3 sample); -1 for padding; the label at t belongs to the segment of token t.
With packing (data.pack) a row holds several pairs, and no token attends across pairs.
"""

from __future__ import annotations

import torch

from posttrain.data.batching import IGNORE, Example

SEGMENTS_PER_PAIR = 4  # block 0 prefix, 1 chosen, 2 rejected, 3 SELM's reference sample


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


def collate_shared(
    groups: list[list[Example]],
    pad_id: int,
    pack_length: int | None = None,
    per_unit: int = SEGMENTS_PER_PAIR,
    first_fit: bool = False,
) -> dict[str, torch.Tensor]:
    """Right-padded rows of laid-out pairs: one pair per row, or (pack_length) as many whole pairs
    as fit in pack_length tokens, in order (a longer pair gets a row of its own). segment_ids
    encode (pair, block) as per_unit * pair + block, pair = the pair's index in `groups`; a unit
    of more responses than a pair (GRPO's group of G completions) needs per_unit > G. first_fit
    puts each unit in the first row with room for it rather than only the last one."""
    if max(len(g) for g in groups) >= per_unit:
        raise ValueError(f"{max(len(g) for g in groups)} responses need per_unit > {per_unit}")
    laid = [pair_layout(rows) for rows in groups]
    packed: list[list[int]] = []  # indices of the pairs in each row
    used: list[int] = []  # tokens in each row
    for i, (row, _, _) in enumerate(laid):
        rows_open = range(len(packed)) if first_fit else range(len(packed))[-1:]
        fits = [r for r in rows_open if pack_length and used[r] + len(row) <= pack_length]
        if fits:
            packed[fits[0]].append(i)
            used[fits[0]] += len(row)
        else:
            packed.append([i])
            used.append(len(row))
    width = max(used)
    shape = (len(packed), width)
    input_ids, labels = torch.full(shape, pad_id), torch.full(shape, IGNORE)
    position_ids, segment_ids = torch.zeros(shape, dtype=torch.long), torch.full(shape, -1)
    for r, members in enumerate(packed):
        at = 0
        for i in members:
            row, positions, segments = laid[i]
            cols = slice(at, at + len(row))
            input_ids[r, cols], labels[r, cols] = torch.tensor(row.input_ids), torch.tensor(row.labels)
            position_ids[r, cols] = torch.tensor(positions)
            segment_ids[r, cols] = torch.tensor(segments) + per_unit * i
            at += len(row)
        position_ids[r, at:] = torch.arange(width - at)  # padding: a segment of its own
    return {
        "input_ids": input_ids,
        "labels": labels,
        "position_ids": position_ids,
        "segment_ids": segment_ids,
        "num_tokens": torch.tensor(sum(len(x[0]) for x in laid)),
    }
