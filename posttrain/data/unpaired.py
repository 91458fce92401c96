"""KTO's unpaired examples: (prompt, completion, desirable?) rows in TRL's unpaired format
{prompt, completion, label: bool}, or paired preference rows split into a desirable chosen and an
undesirable rejected example. Each example also carries a fixed MISMATCHED completion (another
example's) whose log-ratio estimates KTO's reference point z0.

Packed (data.pack, collate_unpaired's pack_length): several examples per row, each a segment of
its own (data/shared_prefix.py with one response per unit: no attention across examples, position
ids restarting per example); the mismatched rows are packed the same way into their own rows
(keys prefixed KL_), so the z0 pass still scores only them, without gradient. The reference pass
lays out each example as prompt + completion + mismatched completion (the prompt once)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

from posttrain.config.recipe import DEFAULT_MAX_ROW_BYTES
from posttrain.data.batching import Example, collate_padded
from posttrain.data.preference import tokenize_completion
from posttrain.data.problems import RowProblems
from posttrain.data.records import PreferenceRecord, RecordError, to_record
from posttrain.data.shared_prefix import collate_shared
from posttrain.data.sources import read_rows
from posttrain.errors import UserError


@dataclass
class UnpairedExample:
    prompt: list[dict]
    completion: list[dict]
    desirable: bool
    path: str = ""  # where the row came from, for errors
    row: int = 0
    matched: Example | None = None
    mismatched: Example | None = None
    ref_logps: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return max(len(self.matched), len(self.mismatched))


def read_unpaired(
    path: str, on_error: str = "fail", *, max_row_bytes: int | None = DEFAULT_MAX_ROW_BYTES
) -> list[UnpairedExample]:
    """Examples of one file; an invalid row is an error naming it, or skipped and counted with
    data.on_error: skip."""
    out, problems = [], RowProblems(path, on_error)

    def invalid(number: int, err: RecordError) -> None:  # not JSON, not an object, too large
        problems.add(number, err.field, err.problem)

    for row_number, row in read_rows(path, max_row_bytes=max_row_bytes, on_invalid=invalid):
        try:
            examples = _parse(row)
        except RecordError as err:
            problems.add(row_number, err.field, err.problem)
            continue
        for ex in examples:
            ex.path, ex.row = str(path), row_number
        out += examples
    problems.finish(len(out), "rows")
    return out


def _parse(row: dict) -> list[UnpairedExample]:
    if "chosen" in row and "rejected" in row:
        pair = to_record(row, "preference")
        assert isinstance(pair, PreferenceRecord)
        return [UnpairedExample(pair.prompt, pair.chosen, True), UnpairedExample(pair.prompt, pair.rejected, False)]
    label = row.get("label")
    if not isinstance(label, bool):
        raise RecordError("label", f"expected true or false, got {label!r}")
    # Reuse the preference validation for prompt and completion spellings (strings or messages).
    pair = to_record(
        {"prompt": row.get("prompt"), "chosen": row.get("completion"), "rejected": row.get("completion")}, "preference"
    )
    return [UnpairedExample(pair.prompt, pair.chosen, label)]


def tokenize_unpaired(
    tokenizer, examples: list[UnpairedExample], max_length: int, seed: int, on_error: str = "fail"
) -> list[UnpairedExample]:
    """Tokenise each example and its mismatched partner: the completion of the next example in a
    seeded cyclic order, so the pairing (and its reference log-probs) is fixed for the whole run.
    Returns the examples that fit in max_length; one that does not (with its own completion or
    its partner's) is an error naming its row, or dropped with data.on_error: skip."""
    if len(examples) < 2:
        raise UserError("KTO needs at least two examples (the KL estimate pairs prompts with other completions)")
    order = list(range(len(examples)))
    random.Random(f"{seed}/kto-mismatch").shuffle(order)
    partner = {order[i]: order[(i + 1) % len(order)] for i in range(len(order))}
    kept, problems = [], {}
    for i, ex in enumerate(examples):
        ex.matched = tokenize_completion(tokenizer, ex.prompt, ex.completion)
        ex.mismatched = tokenize_completion(tokenizer, ex.prompt, examples[partner[i]].completion)
        if len(ex) > max_length:
            which = (
                "completion"
                if len(ex.matched) > max_length
                else "completion of the mismatched partner paired with it for the z0 estimate"
            )
            found = problems.setdefault(ex.path, RowProblems(ex.path, on_error))
            found.add(
                ex.row,
                "completion",
                f"prompt + {which}: {len(ex)} tokens, longer than "
                f"max_length {max_length} (raise data.max_length or set data.on_error: skip)",
            )
            continue
        kept.append(ex)
    for found in problems.values():
        found.finish(len(kept), "KTO examples within max_length")
    if len(kept) < 2:
        raise UserError(
            "KTO needs at least two examples within max_length (the KL estimate pairs prompts with other completions)"
        )
    return kept


KL_ = "kl_"  # key prefix of the packed mismatched rows


def collate_unpaired(
    examples: list[UnpairedExample], pad_id: int, pack_length: int | None = None
) -> dict[str, torch.Tensor]:
    """Rows: the examples' completions, then their mismatched partners; or (pack_length) each side
    packed into rows of at most pack_length tokens, the mismatched side under KL_ keys."""
    if pack_length is None:
        batch = collate_padded([e.matched for e in examples] + [e.mismatched for e in examples], pad_id)
    else:
        batch = _packed([e.matched for e in examples], pad_id, pack_length)
        kl = _packed([e.mismatched for e in examples], pad_id, pack_length)
        batch["num_tokens"] = batch["num_tokens"] + kl.pop("num_tokens")
        batch.update({KL_ + k: v for k, v in kl.items()})
    return _with_example_fields(batch, examples)


def _packed(rows: list[Example], pad_id: int, pack_length: int) -> dict[str, torch.Tensor]:
    """Whole examples packed (first fit) into rows no wider than the longest of them and pack_length:
    fewer rows than one per example, never a wider one, so attention costs no more than padded rows."""
    return collate_shared([[r] for r in rows], pad_id, min(pack_length, max(len(r) for r in rows)), first_fit=True)


def collate_unpaired_reference(
    examples: list[UnpairedExample], pad_id: int, pack_length: int | None = None
) -> dict[str, torch.Tensor]:
    """The reference pass's layout with packing: prompt + completion + mismatched completion in one
    row (blocks 1 and 2 of data/shared_prefix.py), whole examples packed up to pack_length."""
    batch = collate_shared([[e.matched, e.mismatched] for e in examples], pad_id, pack_length)
    return _with_example_fields(batch, examples)


def _with_example_fields(batch: dict[str, torch.Tensor], examples: list[UnpairedExample]) -> dict[str, torch.Tensor]:
    batch["desirable"] = torch.tensor([e.desirable for e in examples])
    for key in examples[0].ref_logps:
        batch[f"ref_{key}"] = torch.tensor([e.ref_logps[key] for e in examples], dtype=torch.float32)
    batch["num_examples"] = batch["num_pairs"] = torch.tensor(len(examples))
    return batch
