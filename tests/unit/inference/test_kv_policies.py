"""Eviction rules on hand-made tensors: StreamingLLM's sinks + window, H2O's accumulated attention."""

import re

import pytest
import torch

from posttrain.errors import UserError
from posttrain.inference.kv_eviction.policies import (
    Policy,
    accumulate_attention,
    check_policy,
    protected_mask,
    select_units,
)


def test_streaming_keeps_exactly_sinks_and_window():
    positions = torch.arange(20).expand(1, 2, 20)
    keep = select_units(torch.zeros(1, 2, 20), positions, budget=6, sinks=2, recent=4)
    assert keep.tolist() == [[[0, 1, 16, 17, 18, 19]] * 2]


def test_protected_mask_after_an_earlier_eviction():
    # positions held after earlier evictions are not contiguous; "recent" means the largest positions
    positions = torch.tensor([[[0, 1, 7, 9, 12, 13]]])
    assert protected_mask(positions, sinks=1, recent=2).tolist() == [[[True, False, False, False, True, True]]]


def test_h2o_accumulates_attention_by_hand():
    # one KV head shared by two query heads; 2 cached units then a chunk of 2 queries (4 keys)
    previous = torch.tensor([[[0.5, 0.1]]])
    w = torch.tensor(
        [
            [
                [
                    [0.2, 0.3, 0.5, 0.0],  # head 0, query 2 (causal: sees units 0..2)
                    [0.1, 0.1, 0.2, 0.6],
                ],  # head 0, query 3
                [
                    [0.6, 0.1, 0.3, 0.0],  # head 1, query 2
                    [0.0, 0.5, 0.1, 0.4],
                ],
            ]
        ]
    )  # head 1, query 3
    # unit 0: 0.5 + 0.2+0.1+0.6+0.0 = 1.4; unit 1: 0.1 + 0.3+0.1+0.1+0.5 = 1.1
    # unit 2: 0 + 0.5+0.2+0.3+0.1 = 1.1;   unit 3: 0 + 0.0+0.6+0.0+0.4 = 1.0
    scores = accumulate_attention(previous, w, kv_heads=1)
    torch.testing.assert_close(scores, torch.tensor([[[1.4, 1.1, 1.1, 1.0]]]))
    # budget 2 with the newest unit protected: the heavy hitter unit 0 and the recent unit 3
    keep = select_units(scores, torch.arange(4).expand(1, 1, 4), budget=2, sinks=0, recent=1)
    assert keep.tolist() == [[[0, 3]]]


def test_h2o_keeps_the_highest_scores_per_kv_head():
    scores = torch.tensor([[[5.0, 1.0, 4.0, 0.0, 3.0, 2.0], [0.0, 9.0, 1.0, 8.0, 2.0, 7.0]]])
    keep = select_units(scores, torch.arange(6).expand(1, 2, 6), budget=3, sinks=0, recent=1)
    assert keep.tolist() == [[[0, 2, 5], [1, 3, 5]]]


@pytest.mark.parametrize(
    "policy, context, message",
    [
        (Policy("h2o", 300, 0, 8), 224, "not smaller than the context"),
        (Policy("h2o", 4, 0, 8), 224, "smaller than sinks + recent"),
        (Policy("streaming", 40, 4, 28), 224, "keeps exactly sinks + window"),
        (Policy("locret", 0, 0, 0), 224, "budget >= 1"),
        (Policy("lru", 32, 0, 0), 224, "choose one of"),
    ],
)
def test_bad_budgets_are_user_errors(policy, context, message):
    with pytest.raises(UserError, match=re.escape(message)):
        check_policy(policy, context)
