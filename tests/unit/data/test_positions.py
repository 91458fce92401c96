"""LOGO's positional-index synthesis and the several-rejected preference rows."""

import random

import pytest
import torch

from posttrain.data.batching import IGNORE, Example
from posttrain.data.positions import (
    chunked_positions,
    row_positions,
    skip_offsets,
    synthesize_prompt_positions,
)
from posttrain.data.preference import PairExample, collate_pairs, synthesize_positions
from posttrain.data.records import RecordError, to_record


def test_chunked_positions_by_hand():
    # 7 tokens in 3 pieces [0,2) [2,4) [4,7), shifted by 0, 10, 15
    assert chunked_positions(7, [0, 10, 15]) == [0, 1, 12, 13, 19, 20, 21]
    assert chunked_positions(3, [0]) == [0, 1, 2]


def test_synthetic_positions_span_the_target_and_stay_increasing():
    rng = random.Random(0)
    for _ in range(50):
        prompt = synthesize_prompt_positions(40, 50, 1000, 4, rng)
        full = row_positions(prompt, 50)
        assert full[0] == 0 and len(full) == 50
        assert all(b > a for a, b in zip(full, full[1:]))
        assert full[-1] <= 999  # the longest row ends inside the target context
        assert full[40:] == list(range(full[39] + 1, full[39] + 11))  # the response is contiguous
    offsets = skip_offsets(950, 4, random.Random(1))
    assert offsets[0] == 0 and offsets == sorted(offsets) and offsets[-1] <= 950
    assert skip_offsets(-5, 3, random.Random(0)) == [0, 0, 0]  # already longer than the target


def _ex(prompt: int, response: int) -> Example:
    return Example(list(range(1, prompt + response + 1)), [IGNORE] * prompt + [5] * response)


def test_collate_stacks_extra_rejected_rows_with_their_pair_and_positions():
    pairs = [
        PairExample([], _ex(3, 2), _ex(3, 1), more_rejected=[_ex(3, 3), _ex(3, 1)]),
        PairExample([], _ex(2, 2), _ex(2, 2)),
    ]
    synthesize_positions(pairs, target_length=100, chunks=2, seed=0)
    batch = collate_pairs(pairs, pad_id=0)
    assert batch["input_ids"].shape == (6, 6)
    assert batch["extra_rejected_pair"].tolist() == [0, 0]
    assert int(batch["num_pairs"]) == 2
    # chosen and rejected of one prompt share the prompt's positions; padding is masked
    assert torch.equal(batch["position_ids"][0, :3], batch["position_ids"][2, :3])
    assert torch.equal(batch["position_ids"][0, :3], batch["position_ids"][4, :3])
    assert batch["attention_mask"][3].tolist() == [1, 1, 1, 1, 0, 0]
    assert int(batch["position_ids"].max()) <= 99 + 6  # padding may run past; real tokens do not


def test_rejected_list_gives_several_completions():
    record = to_record(
        {"prompt": "q", "chosen": "a", "rejected": ["b", [{"role": "assistant", "content": "c"}]]}, "preference"
    )
    assert record.rejected == [{"role": "assistant", "content": "b"}]
    assert record.more_rejected == ([{"role": "assistant", "content": "c"}],)
    one = to_record({"prompt": "q", "chosen": "a", "rejected": [{"role": "assistant", "content": "b"}]}, "auto")
    assert one.more_rejected == ()


def test_bad_rejected_list_item_names_its_index():
    with pytest.raises(RecordError, match=r"rejected\[1\]"):
        to_record({"prompt": "q", "chosen": "a", "rejected": ["b", ""]}, "preference")
    with pytest.raises(RecordError, match=r"rejected\[1\]\[0\].role"):
        to_record({"prompt": "q", "chosen": "a", "rejected": ["b", [{"role": "user", "content": "x"}]]}, "preference")
