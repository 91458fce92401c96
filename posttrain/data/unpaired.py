"""KTO's unpaired examples: (prompt, completion, desirable?) rows in TRL's unpaired format
{prompt, completion, label: bool}, or paired preference rows split into a desirable chosen and an
undesirable rejected example. Each example also carries a fixed MISMATCHED completion (another
example's) whose log-ratio estimates KTO's reference point z0."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

from posttrain.config import DEFAULT_MAX_ROW_BYTES
from posttrain.data.batching import Example, collate_padded
from posttrain.data.preference import tokenize_completion
from posttrain.data.records import PreferenceRecord, RecordError, to_record
from posttrain.data.sources import read_rows
from posttrain.errors import UserError, row_error


@dataclass
class UnpairedExample:
    prompt: list[dict]
    completion: list[dict]
    desirable: bool
    matched: Example | None = None
    mismatched: Example | None = None
    ref_logps: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return max(len(self.matched), len(self.mismatched))


def read_unpaired(path: str, *, max_row_bytes: int | None = DEFAULT_MAX_ROW_BYTES) -> list[UnpairedExample]:
    out = []
    for row_number, row in read_rows(path, max_row_bytes=max_row_bytes):
        try:
            out += _parse(row)
        except RecordError as err:
            raise row_error(path, row_number, err.field, err.problem) from None
    if not out:
        raise UserError(f"{path}: no valid rows")
    return out


def _parse(row: dict) -> list[UnpairedExample]:
    if "chosen" in row and "rejected" in row:
        pair = to_record(row, "preference")
        assert isinstance(pair, PreferenceRecord)
        return [UnpairedExample(pair.prompt, pair.chosen, True),
                UnpairedExample(pair.prompt, pair.rejected, False)]
    label = row.get("label")
    if not isinstance(label, bool):
        raise RecordError("label", f"expected true or false, got {label!r}")
    # Reuse the preference validation for prompt and completion spellings (strings or messages).
    pair = to_record({"prompt": row.get("prompt"), "chosen": row.get("completion"),
                      "rejected": row.get("completion")}, "preference")
    return [UnpairedExample(pair.prompt, pair.chosen, label)]


def tokenize_unpaired(tokenizer, examples: list[UnpairedExample], max_length: int, seed: int) -> None:
    """Tokenise each example and its mismatched partner: the completion of the next example in a
    seeded cyclic order, so the pairing (and its reference log-probs) is fixed for the whole run."""
    if len(examples) < 2:
        raise UserError("KTO needs at least two examples (the KL estimate pairs prompts with other completions)")
    order = list(range(len(examples)))
    random.Random(f"{seed}/kto-mismatch").shuffle(order)
    partner = {order[i]: order[(i + 1) % len(order)] for i in range(len(order))}
    for i, ex in enumerate(examples):
        ex.matched = _cut(tokenize_completion(tokenizer, ex.prompt, ex.completion), max_length)
        other = examples[partner[i]].completion
        ex.mismatched = _cut(tokenize_completion(tokenizer, ex.prompt, other), max_length)


def _cut(example: Example, max_length: int) -> Example:
    if len(example) > max_length:
        raise UserError(f"a KTO example is {len(example)} tokens, longer than max_length {max_length}")
    return example


def collate_unpaired(examples: list[UnpairedExample], pad_id: int) -> dict[str, torch.Tensor]:
    batch = collate_padded([e.matched for e in examples] + [e.mismatched for e in examples], pad_id)
    batch["desirable"] = torch.tensor([e.desirable for e in examples])
    for key in examples[0].ref_logps:
        batch[f"ref_{key}"] = torch.tensor([e.ref_logps[key] for e in examples], dtype=torch.float32)
    batch["num_examples"] = torch.tensor(len(examples))
    return batch
