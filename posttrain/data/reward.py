"""Reward-model data: scored pairs, attribute-rated responses, and response sets to score.

    pairs      {prompt, chosen, rejected[, margin][, strength]}   bradley_terry, bt_margin, scaled_bt
    rated      {prompt, response, <attribute>: number | null, ...} regression (HelpSteer2's layout)
    responses  {prompt, responses | completions: [response, ...]}   `posttrain score`

Each sequence is prompt + response rendered with the chat template (tokenize_completion), so its
last token is the response's end of turn, where the reward model reads its score. A sequence
longer than max_length is an error naming its row (or skipped with data.on_error: skip): cutting
it would score a response the annotator never saw.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from posttrain.config.recipe import DEFAULT_MAX_ROW_BYTES, SourceConfig
from posttrain.data import pointless
from posttrain.data.batching import IGNORE, Example
from posttrain.data.preference import tokenize_completion
from posttrain.data.problems import RowProblems
from posttrain.data.records import RecordError, describe_type, to_record
from posttrain.data.shared_prefix import SEGMENTS_PER_PAIR, collate_shared
from posttrain.data.sources import load_records, read_rows
from posttrain.errors import UserError, row_error

STRENGTHS = (1, 2, 3)  # HelpSteer2-Preference: slightly, clearly, much better
RESPONSE_LIST_FIELDS = ("responses", "completions")


@dataclass
class RewardPair:
    chosen: list[int]
    rejected: list[int]
    margin: float | None = None  # bt_margin's m
    strength: float | None = None  # scaled_bt's m in {1, 2, 3}

    def __len__(self) -> int:
        return max(len(self.chosen), len(self.rejected))


@dataclass
class RatedResponse:
    input_ids: list[int]
    targets: list[float]  # one per attribute; 0.0 where not annotated
    annotated: list[bool]

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class ResponseSet:
    """A prompt and its candidate responses, kept as written in the file (for the output rows)
    and as messages (for the chat template)."""

    row: int
    prompt: Any
    prompt_messages: list[dict]
    responses: list[Any]
    response_messages: list[list[dict]]


def reward_pairs(
    tokenizer,
    source: SourceConfig,
    max_length: int,
    on_error: str,
    margin_field: str | None = None,
    strength_field: str | None = None,
    *,
    max_row_bytes: int | None = DEFAULT_MAX_ROW_BYTES,
) -> list[RewardPair]:
    """Tokenised chosen/rejected pairs; with margin_field / strength_field, each pair's margin or
    strength read from that field of its row."""
    loaded = load_records(
        source.path, "preference", on_error, source.split, source.columns or None, max_row_bytes=max_row_bytes
    )
    pointless.identical_pairs(loaded.path, ((r.chosen, r.rejected) for r in loaded.records))
    # the rows load_records refused (failed, or counted as skipped) are only left out here
    fields = _raw_rows(source, max_row_bytes, lambda *_: None) if margin_field or strength_field else {}
    problems, pairs = RowProblems(loaded.path, on_error), []
    for row, record in zip(loaded.rows, loaded.records):
        try:
            margin = _number(fields[row], margin_field) if margin_field else None
            strength = _strength(fields[row], strength_field) if strength_field else None
        except RecordError as err:
            problems.add(row, err.field, err.problem)
            continue
        chosen = tokenize_completion(tokenizer, record.prompt, record.chosen).input_ids
        rejected = tokenize_completion(tokenizer, record.prompt, record.rejected).input_ids
        if max(len(chosen), len(rejected)) > max_length:
            problems.add(row, "chosen/rejected", _too_long(max(len(chosen), len(rejected)), max_length))
            continue
        pairs.append(RewardPair(chosen, rejected, margin, strength))
    problems.finish(len(pairs), "preference pairs")
    return pairs


def rated_responses(
    tokenizer,
    source: SourceConfig,
    attributes: list[str],
    max_length: int,
    on_error: str,
    *,
    max_row_bytes: int | None = DEFAULT_MAX_ROW_BYTES,
) -> list[RatedResponse]:
    """Tokenised prompt + response with one target per attribute; an absent or null attribute is
    not annotated (masked out of the loss). A row above max_row_bytes is invalid (before tokenising)."""
    problems, rated = RowProblems(source.path, on_error), []

    def invalid(row: int, err: RecordError) -> None:
        problems.add(row, err.field, err.problem)

    for row, fields in _raw_rows(source, max_row_bytes, invalid).items():
        try:
            prompt, response = _prompt(fields), _response(fields.get("response"), "response")
            values = [_number(fields, name, required=False) for name in attributes]
        except RecordError as err:
            problems.add(row, err.field, err.problem)
            continue
        if all(v is None for v in values):
            problems.add(row, "/".join(attributes), "no attribute annotated")
            continue
        ids = tokenize_completion(tokenizer, prompt, response).input_ids
        if len(ids) > max_length:
            problems.add(row, "response", _too_long(len(ids), max_length))
            continue
        rated.append(RatedResponse(ids, [v or 0.0 for v in values], [v is not None for v in values]))
    problems.finish(len(rated), "rated responses")
    return rated


def response_sets(path: str) -> list[ResponseSet]:
    """Rows {prompt, responses | completions: [...]}; every response is validated like a completion."""
    sets = []
    for row, fields in read_rows(path):
        name = next((f for f in RESPONSE_LIST_FIELDS if fields.get(f) is not None), "responses")
        responses = fields.get(name)
        if not isinstance(responses, list):
            got = describe_type(responses) if responses is not None else "missing"
            raise row_error(path, row, name, f"expected a list of responses, got {got}")
        try:
            prompt = _prompt(fields)
            messages = [_response(r, f"{name}[{i}]") for i, r in enumerate(responses)]
        except RecordError as err:
            raise row_error(path, row, err.field, err.problem) from None
        sets.append(ResponseSet(row, fields["prompt"], prompt, responses, messages))
    if not sets:
        raise UserError(f"{path}: no rows")
    return sets


# ---- batches --------------------------------------------------------------------------------


def pad_right(rows: list[list[int]], pad_id: int) -> torch.Tensor:
    """[N, longest] token ids, right-padded with pad_id (the reward head reads the last non-pad)."""
    input_ids = torch.full((len(rows), max(len(r) for r in rows)), pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(row)
    return input_ids


def collate_reward_pairs(
    pairs: list[RewardPair], pad_id: int, shared: bool = False, pack_length: int | None = None
) -> dict[str, torch.Tensor]:
    """Chosen rows then rejected rows in one batch, so one forward scores both; or (shared) one
    shared-prefix row per pair (data/shared_prefix.py, packed with pack_length), scored at
    `score_at` [2n, 2] (row, column): chosen then rejected."""
    rows = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    if shared:
        groups = [[Example(r, [IGNORE] * len(r)) for r in (p.chosen, p.rejected)] for p in pairs]
        batch = collate_shared(groups, pad_id, pack_length)
        batch["score_at"] = score_positions(batch["input_ids"], batch["segment_ids"], len(pairs), pad_id)
    else:
        batch = {"input_ids": pad_right(rows, pad_id), "num_tokens": torch.tensor(sum(len(r) for r in rows))}
    batch["num_pairs"] = torch.tensor(len(pairs))
    for key, values in (("margins", [p.margin for p in pairs]), ("strengths", [p.strength for p in pairs])):
        if values[0] is not None:
            batch[key] = torch.tensor(values, dtype=torch.float32)
    return batch


def score_positions(input_ids: torch.Tensor, segment_ids: torch.Tensor, n: int, pad_id: int) -> torch.Tensor:
    """(row, column) of each response's score, in block order: as a sequence classifier pools its
    own row, the rightmost token of the response's row (prefix + response) that is not pad_id."""
    cols = torch.arange(input_ids.shape[1])
    out = []
    for block in (1, 2):
        for i in range(n):
            own = (segment_ids == SEGMENTS_PER_PAIR * i) | (segment_ids == SEGMENTS_PER_PAIR * i + block)
            row = int(own.any(1).nonzero()[0])
            candidates = own[row] & (input_ids[row] != pad_id)
            # a row of pad tokens only: the classifier's argmax over zeros picks its first token
            col = int(cols[candidates].max()) if candidates.any() else int(cols[own[row]].min())
            out.append((row, col))
    return torch.tensor(out)


def collate_rated(examples: list[RatedResponse], pad_id: int) -> dict[str, torch.Tensor]:
    return {
        "input_ids": pad_right([e.input_ids for e in examples], pad_id),
        "targets": torch.tensor([e.targets for e in examples], dtype=torch.float32),
        "attribute_mask": torch.tensor([e.annotated for e in examples], dtype=torch.bool),
        "num_tokens": torch.tensor(sum(len(e) for e in examples)),
    }


# ---- fields ---------------------------------------------------------------------------------


def _raw_rows(
    source: SourceConfig, max_row_bytes: int | None, on_invalid: Callable[[int, RecordError], None]
) -> dict[int, dict[str, Any]]:
    """Every valid row by its row number, with the source's column renames applied."""
    renames = source.columns or {}
    return {
        row: {renames.get(k, k): v for k, v in fields.items()}
        for row, fields in read_rows(source.path, source.split, max_row_bytes, on_invalid)
    }


def _number(fields: dict[str, Any], name: str, required: bool = True) -> float | None:
    """A finite number (a numeric string too: CSV cells are strings); absent, null, an empty cell
    or NaN (how pandas writes a missing float) is None."""
    value = fields.get(name)
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        if required:
            raise RecordError(name, "missing")
        return None
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise RecordError(name, f"expected a number, got {value!r}")
    return number


def _strength(fields: dict[str, Any], name: str) -> float:
    value = _number(fields, name)
    if value not in STRENGTHS:
        raise RecordError(name, f"preference strength must be 1, 2 or 3, got {fields[name]!r}")
    return value


def _prompt(fields: dict[str, Any]) -> list[dict]:
    """The prompt as messages: a string is one user turn; messages must end with a user turn."""
    return to_record({"prompt": fields.get("prompt")}, "prompt").prompt


def _response(value: Any, field: str) -> list[dict]:
    """A response as messages (a string is one assistant turn), validated like a preference
    completion; errors name this row's own field."""
    try:
        return to_record({"prompt": "-", "chosen": value, "rejected": value}, "preference").chosen
    except RecordError as err:
        raise RecordError(err.field.replace("chosen", field, 1), err.problem) from None


def _too_long(length: int, max_length: int) -> str:
    return f"{length} tokens, longer than max_length {max_length} (raise data.max_length or set data.on_error: skip)"
