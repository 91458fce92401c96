"""Preference records -> tokenised pairs -> one concatenated batch per micro-batch.

Chosen and rejected share one tokenised prompt (rendered once with the chat template's generation
header); each response is the token continuation of that prompt, and only response tokens carry
labels. A micro-batch stacks the chosen rows, then the rejected rows (then SELM's reference-policy
samples, then LOGO's further rejected rows with the pair each belongs to), so a single forward
scores all of them; or, with shared=True, one row per pair with the prompt computed once
(data/shared_prefix.py; not for LOGO's further rejected rows or synthetic positions, which keep
the separate rows).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

from posttrain.data.batching import IGNORE, Example, collate_padded
from posttrain.data.chat import render_ids, tokenize_prompt
from posttrain.data.positions import row_positions, synthesize_prompt_positions
from posttrain.data.problems import RowProblems
from posttrain.data.records import RecordError
from posttrain.data.shared_prefix import collate_shared
from posttrain.data.sources import validated_rows
from posttrain.errors import UserError


@dataclass
class PairExample:
    prompt: list[dict]
    chosen: Example
    rejected: Example
    ref_sample: Example | None = None  # SELM: a response sampled from the reference policy
    ref_logps: dict[str, float] = field(default_factory=dict)  # precomputed reference log-probs
    scores: tuple[float, float] | None = None  # REBEL: rewards r(x, chosen), r(x, rejected)
    more_rejected: list[Example] = field(default_factory=list)  # LOGO: rejected responses 2..M
    prompt_positions: list[int] | None = None  # LOGO: synthetic position ids of the prompt
    row: int | None = None  # the 1-based file row it came from (curation reports by row)

    def __len__(self) -> int:
        return max(len(self.chosen), len(self.rejected), *(len(r) for r in self.more_rejected))


def tokenize_completion(tokenizer, prompt: list[dict], completion: list[dict]) -> Example:
    """prompt + completion with labels on the completion tokens only (end-of-turn included)."""
    prompt_ids = tokenize_prompt(tokenizer, prompt)
    # One rendering of the whole conversation: only the completion is labelled, so the per-turn
    # masks of tokenize_conversation (two more renderings per assistant turn) are not needed.
    full_ids = render_ids(tokenizer, prompt + completion, add_generation_prompt=False)
    if full_ids[: len(prompt_ids)] != prompt_ids:
        raise UserError(
            "the chat template renders the prompt differently inside the conversation; cannot separate response tokens"
        )
    return Example(full_ids, [IGNORE] * len(prompt_ids) + full_ids[len(prompt_ids) :])


def tokenize_pairs(tokenizer, loaded, max_length: int, on_error: str, with_scores: bool = False) -> list[PairExample]:
    """Tokenised pairs; a pair longer than max_length, or (with_scores, REBEL) without numeric
    `chosen_score`/`rejected_score`, is an error naming its row, or skipped and counted with
    data.on_error: skip."""
    raw = dict(validated_rows(loaded.path, on_error=on_error)) if with_scores else {}
    pairs, problems = [], RowProblems(loaded.path, on_error)
    for row, record in zip(loaded.rows, loaded.records):
        try:
            scores = _scores(raw[row]) if with_scores else None
        except RecordError as err:
            problems.add(row, err.field, err.problem)
            continue
        chosen = tokenize_completion(tokenizer, record.prompt, record.chosen)
        rejected = tokenize_completion(tokenizer, record.prompt, record.rejected)
        more = [tokenize_completion(tokenizer, record.prompt, r) for r in record.more_rejected]
        pair = PairExample(record.prompt, chosen, rejected, scores=scores, more_rejected=more, row=row)
        if len(pair) > max_length:
            problems.add(
                row,
                "chosen/rejected",
                f"{len(pair)} tokens, longer than max_length "
                f"{max_length} (raise data.max_length or set data.on_error: skip)",
            )
            continue
        pairs.append(pair)
    problems.finish(len(pairs), f"preference pair (every pair was skipped; max_length {max_length})")
    return pairs


def _scores(raw: dict) -> tuple[float, float]:
    """REBEL's rewards, as `posttrain score` writes them beside each pair."""
    values = []
    for name in ("chosen_score", "rejected_score"):
        value = raw.get(name)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise RecordError(name, f"a number is needed, got {value!r}")
        values.append(float(value))
    return values[0], values[1]


def synthesize_positions(pairs: list[PairExample], target_length: int, chunks: int, seed: int) -> None:
    """LOGO's positional-index synthesis (data/positions.py) on every pair, one draw per pair from
    a generator seeded with `seed`, so a rerun or a resume sees the same positions."""
    rng = random.Random(seed)
    for pair in pairs:
        prompt_length = next((i for i, label in enumerate(pair.chosen.labels) if label != IGNORE), len(pair.chosen))
        pair.prompt_positions = synthesize_prompt_positions(prompt_length, len(pair), target_length, chunks, rng)


def collate_pairs(
    pairs: list[PairExample], pad_id: int, shared: bool = False, pack_length: int | None = None
) -> dict[str, torch.Tensor]:
    """Row blocks chosen | rejected [| sample] [| LOGO's further rejected], or (shared) one
    shared-prefix row per pair, or (shared, pack_length) several pairs per row."""
    with_sample = all(p.ref_sample is not None for p in pairs)
    groups = [[p.chosen, p.rejected] + ([p.ref_sample] if with_sample else []) for p in pairs]
    separate_only = any(p.more_rejected for p in pairs) or pairs[0].prompt_positions is not None
    if shared and not separate_only:
        batch = collate_shared(groups, pad_id, pack_length)
    else:
        rows = [g[k] for k in range(len(groups[0])) for g in groups]
        extra_pair = [i for i, p in enumerate(pairs) for _ in p.more_rejected]
        rows += [r for p in pairs for r in p.more_rejected]
        batch = collate_padded(rows, pad_id)
        if extra_pair:
            batch["extra_rejected_pair"] = torch.tensor(extra_pair, dtype=torch.long)
        if pairs[0].prompt_positions is not None:
            batch.update(_synthetic_positions(pairs, rows, batch["input_ids"].shape[1]))
    for key in pairs[0].ref_logps:
        batch[f"ref_{key}"] = torch.tensor([p.ref_logps[key] for p in pairs], dtype=torch.float32)
    if pairs[0].scores is not None:
        scores = torch.tensor([p.scores for p in pairs], dtype=torch.float32)
        batch["chosen_score"], batch["rejected_score"] = scores[:, 0], scores[:, 1]
    batch["num_pairs"] = torch.tensor(len(pairs))
    return batch


def _synthetic_positions(pairs: list[PairExample], rows: list[Example], width: int) -> dict[str, torch.Tensor]:
    """Position ids per row from its pair's prompt positions, and the attention mask that keeps
    transformers from reading the position jumps as packed-document boundaries."""
    owner = _row_owners(pairs, rows)
    positions = torch.tensor([row_positions(pairs[o].prompt_positions, width) for o in owner])
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for r, row in enumerate(rows):
        mask[r, : len(row)] = 1
    return {"position_ids": positions, "attention_mask": mask}


def _row_owners(pairs: list[PairExample], rows: list[Example]) -> list[int]:
    """The pair index of every collated row, in collate_pairs' order."""
    n = len(pairs)
    blocks = (len(rows) - sum(len(p.more_rejected) for p in pairs)) // n
    return [i for _ in range(blocks) for i in range(n)] + [i for i, p in enumerate(pairs) for _ in p.more_rejected]
