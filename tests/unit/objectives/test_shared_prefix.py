"""Shared-prefix pairs (data/shared_prefix.py): one row per pair, prompt computed once, and every
response log-prob and gradient equal to the separate forward's (fp32, 1e-5)."""

import functools
import logging

import pytest
import torch
from accelerate import Accelerator
from transformers import LlamaConfig, LlamaForCausalLM

from posttrain.config.recipe import Recipe
from posttrain.data.batching import IGNORE, Example
from posttrain.data.preference import PairExample, collate_pairs
from posttrain.data.shared_prefix import pair_layout
from posttrain.model.logprobs import TokenLogprobs
from posttrain.model.reference import precompute_reference_logps
from posttrain.model.segment_mask import supports_segment_mask, use_shared_prefix
from posttrain.objectives.pairwise import PairwiseObjective, block_logps
from posttrain.objectives.preference import PreferenceConfig
from posttrain.objectives.registry import get_preference_loss
from posttrain.train.loop import TrainJob, accumulate_gradients

# (prompt length, chosen length, rejected length): prompts and responses of different lengths,
# so rows are padded and the rejected segment starts at different places
SHAPES = [(5, 3, 7), (2, 9, 4), (8, 1, 2), (3, 6, 6), (6, 4, 1), (4, 2, 8), (7, 5, 3), (1, 3, 2)]


def _model(attn="sdpa"):
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        vocab_size=128,
        max_position_embeddings=64,
    )
    config._attn_implementation = attn
    return LlamaForCausalLM(config)


def _completion(prompt, response):
    return Example(prompt + response, [IGNORE] * len(prompt) + response)


def _pairs(with_sample=False):
    g = torch.Generator().manual_seed(3)
    ids = lambda n: torch.randint(3, 120, (n,), generator=g).tolist()  # noqa: E731
    out = []
    for p, c, r in SHAPES:
        prompt = ids(p)
        pair = PairExample([], _completion(prompt, ids(c)), _completion(prompt, ids(r)))
        if with_sample:
            pair.ref_sample = _completion(prompt, ids(c + 1))
        pair.ref_logps = {"chosen": -30.0, "rejected": -31.0, "ref_sample": -29.0}
        out.append(pair)
    return out


def test_layout_repeats_the_last_prompt_token_and_restarts_positions():
    chosen, rejected = _completion([1, 2, 3], [4, 5]), _completion([1, 2, 3], [6])
    row, positions, segments = pair_layout([chosen, rejected])
    assert row.input_ids == [1, 2, 3, 4, 5, 3, 6]
    assert row.labels == [IGNORE, IGNORE, IGNORE, 4, 5, IGNORE, 6]
    assert positions == [0, 1, 2, 3, 4, 2, 3]
    assert segments == [0, 0, 1, 1, 1, 2, 2]


LAYOUTS = {"separate": {}, "shared": {"shared": True}, "packed": {"shared": True, "pack_length": 40}}


@pytest.mark.parametrize(
    "attn,with_sample,layout",
    [
        ("sdpa", False, "shared"),
        ("eager", False, "shared"),
        ("sdpa", True, "shared"),
        ("sdpa", False, "packed"),
        ("eager", True, "packed"),
    ],
)
def test_shared_forward_equals_separate_rows_in_values_and_gradients(attn, with_sample, layout):
    pairs = _pairs(with_sample)
    results = []
    for name in ("separate", layout):
        model = _model(attn)
        mb = collate_pairs(pairs, pad_id=0, **LAYOUTS[name])
        logps, lengths = block_logps(TokenLogprobs(model), mb)
        (logps * torch.linspace(0.5, 1.5, logps.shape[0])).sum().backward()  # every row's gradient
        results.append((logps.detach(), lengths, {n: p.grad for n, p in model.named_parameters()}))
    (sep, sep_len, sep_grads), (sh, sh_len, sh_grads) = results
    assert sh.shape == (len(pairs) * (3 if with_sample else 2),)
    torch.testing.assert_close(sh, sep, atol=1e-5, rtol=0)
    assert torch.equal(sh_len, sep_len)
    for name, grad in sep_grads.items():
        torch.testing.assert_close(sh_grads[name], grad, atol=1e-5, rtol=1e-5, msg=name)
    rows = collate_pairs(pairs, pad_id=0, **LAYOUTS[layout])["input_ids"]
    if layout == "shared":
        assert rows.shape[0] == len(pairs)  # one row per pair: the prompt is computed once
    else:
        assert 1 < rows.shape[0] < len(pairs) and rows.shape[1] <= 40  # several whole pairs per row


def test_packing_keeps_whole_pairs_in_order_with_their_own_positions():
    pairs = _pairs()
    mb = collate_pairs(pairs, pad_id=0, shared=True, pack_length=40)
    pair_of = mb["segment_ids"] // 4
    seen = [int(p) for row in pair_of for p in row.unique_consecutive() if p >= 0]
    assert seen == list(range(len(pairs)))  # every pair once, whole, in order
    for row, positions in zip(pair_of, mb["position_ids"]):
        for p in row.unique():
            if p >= 0:  # each pair's positions start at 0, as in its own row
                assert int(positions[row == p][0]) == 0


def test_a_mask_without_segments_would_differ():
    """Guards the test above: plain causal attention over prompt + chosen + rejected changes the
    rejected log-probs (the rejected tokens would see the chosen ones)."""
    model = _model()
    mb = collate_pairs(_pairs(), pad_id=0, shared=True)
    one_segment = mb["segment_ids"].clamp(max=1)  # chosen and rejected as one causal segment
    with torch.no_grad():
        right, _ = block_logps(TokenLogprobs(model), mb)
        wrong = TokenLogprobs(model)(
            mb["input_ids"], mb["labels"], position_ids=mb["position_ids"], segment_ids=one_segment
        )
        wrong_rejected = (wrong * (mb["segment_ids"] == 2)).sum(-1)
    assert (wrong_rejected - right[len(SHAPES) :]).abs().max() > 1e-3


def test_packed_pairs_that_could_see_each_other_would_differ():
    """Guards the packed case: with every pair of a row given the same pair index, later pairs
    would attend to earlier ones, and their log-probs would change."""
    model = _model()
    mb = collate_pairs(_pairs(), pad_id=0, **LAYOUTS["packed"])
    merged = torch.where(mb["segment_ids"] >= 0, mb["segment_ids"] % 4, -1)
    with torch.no_grad():
        right = TokenLogprobs(model)(
            mb["input_ids"], mb["labels"], position_ids=mb["position_ids"], segment_ids=mb["segment_ids"]
        )
        wrong = TokenLogprobs(model)(mb["input_ids"], mb["labels"], position_ids=mb["position_ids"], segment_ids=merged)
    assert (wrong - right).abs().max() > 1e-3


def test_reference_log_probs_are_equal_in_both_layouts():
    model = _model().eval()
    got = []
    for layout in ("separate", "shared", "packed"):
        pairs = _pairs(with_sample=True)
        collate = functools.partial(collate_pairs, pad_id=0, **LAYOUTS[layout])
        precompute_reference_logps(model, pairs, collate, ("chosen", "rejected", "ref_sample"), 3, torch.device("cpu"))
        got.append(torch.tensor([[p.ref_logps[k] for k in ("chosen", "rejected", "ref_sample")] for p in pairs]))
    torch.testing.assert_close(got[1], got[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(got[2], got[0], atol=1e-5, rtol=0)


def _dpo_step(micro_batch_size, layout):
    model = _model()
    policy = TokenLogprobs(model)
    pairs = _pairs()
    micro_batches = [
        collate_pairs(pairs[i : i + micro_batch_size], pad_id=0, **LAYOUTS[layout])
        for i in range(0, len(pairs), micro_batch_size)
    ]
    objective = PairwiseObjective(get_preference_loss("sigmoid"), PreferenceConfig(beta=0.5))
    job = TrainJob(
        recipe=Recipe(),
        out_dir=None,
        accelerator=Accelerator(cpu=True),
        policy=policy,
        tokenizer=None,
        plan=None,
        objective=objective,
    )
    stats = accumulate_gradients(job, policy, micro_batches)
    return float(stats["loss"]), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_dpo_step_is_the_same_in_every_layout_and_with_accumulation():
    """The loss unit stays the pair: one batch of 8 pairs, four of 2, shared or packed, and the
    separate layout give one loss and one gradient."""
    base_loss, base_grads = _dpo_step(8, "separate")
    for micro_batch_size, layout in ((8, "shared"), (2, "shared"), (8, "packed"), (3, "packed")):
        loss, grads = _dpo_step(micro_batch_size, layout)
        assert abs(loss - base_loss) < 1e-5
        for name, grad in base_grads.items():
            torch.testing.assert_close(grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_backends_without_a_dense_mask_fall_back_and_say_so(caplog):
    assert supports_segment_mask(_model("sdpa")) and supports_segment_mask(_model("eager"))
    model = _model()
    model.config._attn_implementation = "flash_attention_2"
    assert not supports_segment_mask(model)
    with caplog.at_level(logging.WARNING):
        assert use_shared_prefix(model, True) is False
        assert use_shared_prefix(_model(), True) is True
        assert use_shared_prefix(model, False) is False
    warned = [r for r in caplog.records if "cannot take the shared-prefix mask" in r.getMessage()]
    assert len(warned) == 1 and "flash_attention_2" in warned[0].getMessage()
