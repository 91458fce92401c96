"""Preference records -> tokenised pairs -> one concatenated batch per micro-batch.

Chosen and rejected share one tokenised prompt (rendered once with the chat template's generation
header); each response is the token continuation of that prompt, and only response tokens carry
labels. A micro-batch stacks the chosen rows, then the rejected rows (then SELM's reference-policy
samples), so a single forward scores all of them; or, with shared=True, one row per pair with the
prompt computed once (data/shared_prefix.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from posttrain.data.batching import IGNORE, Example, collate_padded
from posttrain.data.chat import render_ids, tokenize_prompt
from posttrain.data.problems import RowProblems
from posttrain.data.records import RecordError
from posttrain.data.shared_prefix import collate_shared
from posttrain.data.sources import read_rows
from posttrain.errors import UserError


@dataclass
class PairExample:
    prompt: list[dict]
    chosen: Example
    rejected: Example
    ref_sample: Example | None = None  # SELM: a response sampled from the reference policy
    ref_logps: dict[str, float] = field(default_factory=dict)  # precomputed reference log-probs
    scores: tuple[float, float] | None = None  # REBEL: rewards r(x, chosen), r(x, rejected)

    def __len__(self) -> int:
        return max(len(self.chosen), len(self.rejected))


def tokenize_completion(tokenizer, prompt: list[dict], completion: list[dict]) -> Example:
    """prompt + completion with labels on the completion tokens only (end-of-turn included)."""
    prompt_ids = tokenize_prompt(tokenizer, prompt)
    # One rendering of the whole conversation: only the completion is labelled, so the per-turn
    # masks of tokenize_conversation (two more renderings per assistant turn) are not needed.
    full_ids = render_ids(tokenizer, prompt + completion, add_generation_prompt=False)
    if full_ids[: len(prompt_ids)] != prompt_ids:
        raise UserError("the chat template renders the prompt differently inside the conversation; "
                        "cannot separate response tokens")
    return Example(full_ids, [IGNORE] * len(prompt_ids) + full_ids[len(prompt_ids):])


def tokenize_pairs(tokenizer, loaded, max_length: int, on_error: str,
                   with_scores: bool = False) -> list[PairExample]:
    """Tokenised pairs; a pair longer than max_length, or (with_scores, REBEL) without numeric
    `chosen_score`/`rejected_score`, is an error naming its row, or skipped and counted with
    data.on_error: skip."""
    raw = dict(read_rows(loaded.path)) if with_scores else {}
    pairs, problems = [], RowProblems(loaded.path, on_error)
    for row, record in zip(loaded.rows, loaded.records):
        try:
            scores = _scores(raw[row]) if with_scores else None
        except RecordError as err:
            problems.add(row, err.field, err.problem)
            continue
        chosen = tokenize_completion(tokenizer, record.prompt, record.chosen)
        rejected = tokenize_completion(tokenizer, record.prompt, record.rejected)
        if max(len(chosen), len(rejected)) > max_length:
            problems.add(row, "chosen/rejected",
                         f"{max(len(chosen), len(rejected))} tokens, longer than max_length "
                         f"{max_length} (raise data.max_length or set data.on_error: skip)")
            continue
        pairs.append(PairExample(record.prompt, chosen, rejected, scores=scores))
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


def collate_pairs(pairs: list[PairExample], pad_id: int, shared: bool = False,
                  pack_length: int | None = None) -> dict[str, torch.Tensor]:
    """Row blocks chosen | rejected [| sample], or (shared) one shared-prefix row per pair, or
    (shared, pack_length) several pairs per row."""
    with_sample = all(p.ref_sample is not None for p in pairs)
    groups = [[p.chosen, p.rejected] + ([p.ref_sample] if with_sample else []) for p in pairs]
    if shared:
        batch = collate_shared(groups, pad_id, pack_length)
    else:
        batch = collate_padded([g[k] for k in range(len(groups[0])) for g in groups], pad_id)
    for key in pairs[0].ref_logps:
        batch[f"ref_{key}"] = torch.tensor([p.ref_logps[key] for p in pairs], dtype=torch.float32)
    if pairs[0].scores is not None:
        scores = torch.tensor([p.scores for p in pairs], dtype=torch.float32)
        batch["chosen_score"], batch["rejected_score"] = scores[:, 0], scores[:, 1]
    batch["num_pairs"] = torch.tensor(len(pairs))
    return batch
