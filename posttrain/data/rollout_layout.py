"""GRPO/PPO rollouts scored in the shared-prefix layout: a group's completions share their prompt.

The G completions sampled for one prompt become ONE unit of data/shared_prefix.py,

    prompt[:-1] | last prompt token + completion_1 | ... | last prompt token + completion_G

in which every completion sees the prompt and itself only and its position ids continue from the
prompt, so each completion token gets exactly the log-prob (and PPO value) of its own row, with
the prompt computed once instead of G times and no padding between completions of different
lengths. A row holds one group, or (pack_length) several whole groups.

The micro-batch keeps its per-completion tensors [B, T] (labels, advantages, old and reference
log-probs, values, returns): the objectives and the statistics are unchanged. Only the forward
runs on the shared rows (keys prefixed SHARED); `shared_index` [B, T] maps each labelled position
of the per-completion layout to its place in the flattened shared rows (-1 elsewhere), and
rollout_forward puts the forward's outputs back in the per-completion layout.
"""

from __future__ import annotations

import torch

from posttrain.data.batching import IGNORE, Example
from posttrain.data.shared_prefix import collate_shared, shared_length

SHARED = "shared_"
LAYOUT_KEYS = ("input_ids", "labels", "position_ids", "segment_ids")


def group_layout(
    rows: list[tuple[list[int], list[int]]], group_of: list[int], pad_id: int, pack_length: int | None = None
) -> dict[str, torch.Tensor]:
    """The shared rows of (prompt, completion) rows, a unit per run of equal group_of, and the
    index from the per-completion layout (rows right-padded to their longest) into them."""
    examples = [Example(p + c, [IGNORE] * len(p) + c) for p, c in rows]
    units: list[list[int]] = []  # row indices of each unit
    for i, g in enumerate(group_of):
        if units and group_of[units[-1][0]] == g:
            units[-1].append(i)
        else:
            units.append([i])
    per_unit = max(len(u) for u in units) + 1  # block 0 is the prompt
    shared = collate_shared([[examples[i] for i in u] for u in units], pad_id, pack_length, per_unit)
    segments = shared.pop("segment_ids").flatten()
    index = torch.full((len(rows), max(len(e) for e in examples)), -1, dtype=torch.long)
    for u, members in enumerate(units):
        keep = max(shared_length([examples[i] for i in members]) - 1, 0)
        for block, i in enumerate(members, start=1):
            columns = (segments == per_unit * u + block).nonzero().squeeze(1)  # the segment, in order
            labelled = torch.tensor(examples[i].labels[keep:]) != IGNORE
            index[i, keep : len(examples[i])] = torch.where(labelled, columns, -1)
    return {
        **{SHARED + k: shared[k] for k in LAYOUT_KEYS if k != "segment_ids"},
        SHARED + "segment_ids": segments.view_as(shared["input_ids"]),
        "shared_index": index,
        "shared_per_unit": torch.tensor(per_unit),
    }


def per_completion(shared_out: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """[R, W] outputs on the shared rows -> [B, T] at the per-completion positions (0 elsewhere)."""
    picked = shared_out.flatten()[index.clamp(min=0)]
    return torch.where(index >= 0, picked, torch.zeros((), dtype=picked.dtype, device=picked.device))


def rollout_forward(module, mb: dict[str, torch.Tensor], device=None):
    """module(input_ids, labels, **layout) -> [B, T] outputs (or a tuple of them, PPO's log-probs
    and values) aligned with the micro-batch's per-completion labels, in whichever layout it holds."""
    if "shared_index" not in mb:
        return module(mb["input_ids"].to(device), mb["labels"].to(device))
    ids, labels, positions, segments = (mb[SHARED + k].to(device) for k in LAYOUT_KEYS)
    out = module(ids, labels, position_ids=positions, segment_ids=segments, per_unit=int(mb["shared_per_unit"]))
    index = mb["shared_index"].to(device)
    return tuple(per_completion(x, index) for x in out) if isinstance(out, tuple) else per_completion(out, index)
