"""Reward models in the shared-prefix layout: each response's score, the pairwise loss and its
gradient equal the separate rows' (fp32, 1e-5), one row per pair or packed."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForSequenceClassification

from posttrain.data.reward import RewardPair, collate_reward_pairs
from posttrain.model.reward_model import RewardScores
from posttrain.objectives.registry import get_reward_loss
from posttrain.objectives.reward_step import PairwiseRewardObjective

PAD = 0
# (prompt, chosen, rejected) lengths; the last pair's rejected response ends in pad tokens (a
# tokenizer whose pad is its end-of-turn token): the classifier then scores the last non-pad token
SHAPES = [(5, 3, 7), (2, 9, 4), (8, 1, 2), (3, 6, 6), (6, 4, 1), (4, 2, 5)]


def _model(attn):
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        vocab_size=128,
        max_position_embeddings=64,
        num_labels=1,
        pad_token_id=PAD,
    )
    config._attn_implementation = attn
    return LlamaForSequenceClassification(config)


def _pairs():
    g = torch.Generator().manual_seed(5)
    ids = lambda n: torch.randint(3, 120, (n,), generator=g).tolist()  # noqa: E731
    out = []
    for p, c, r in SHAPES:
        prompt = ids(p)
        out.append(RewardPair(prompt + ids(c), prompt + ids(r)))
    out[-1].rejected[-2:] = [PAD, PAD]
    return out


def _scores_and_grads(attn, **layout):
    model = _model(attn)
    mb = collate_reward_pairs(_pairs(), PAD, **layout)
    loss, _ = PairwiseRewardObjective(get_reward_loss("bradley_terry")).loss(RewardScores(model), mb)
    loss.backward()
    keys = ("position_ids", "segment_ids", "score_at")
    with torch.no_grad():
        scores = RewardScores(model)(mb["input_ids"], **{k: mb[k] for k in keys if k in mb})
    return scores, float(loss.detach()), {n: p.grad for n, p in model.named_parameters()}, mb


@pytest.mark.parametrize(
    "attn,layout",
    [("sdpa", {"shared": True}), ("eager", {"shared": True}), ("sdpa", {"shared": True, "pack_length": 30})],
)
def test_shared_reward_scores_equal_separate_rows(attn, layout):
    sep_scores, sep_loss, sep_grads, _ = _scores_and_grads(attn)
    scores, loss, grads, mb = _scores_and_grads(attn, **layout)
    assert mb["input_ids"].shape[0] < len(SHAPES) * 2
    torch.testing.assert_close(scores, sep_scores, atol=1e-5, rtol=0)
    assert abs(loss - sep_loss) < 1e-5
    for name, grad in sep_grads.items():
        torch.testing.assert_close(grads[name], grad, atol=1e-5, rtol=1e-5, msg=name)


def test_shared_reward_scores_through_a_lora_adapter():
    """With LoRA (peft SEQ_CLS: adapter in the body, the score head trained as a saved module),
    the shared-prefix path runs the adapted body and head, and scores equal the separate rows'."""
    from posttrain.config.recipe import AdapterConfig
    from posttrain.model.adapters import add_adapter

    model = add_adapter(_model("sdpa"), AdapterConfig(kind="lora", r=4, alpha=8, dropout=0.0), "SEQ_CLS")
    with torch.no_grad():  # a non-zero adapter, so that scores depend on it
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    policy = RewardScores(model)
    pairs = _pairs()
    separate = collate_reward_pairs(pairs, PAD)
    shared = collate_reward_pairs(pairs, PAD, shared=True)
    with torch.no_grad():
        expected = policy(separate["input_ids"])
        got = policy(
            shared["input_ids"],
            position_ids=shared["position_ids"],
            segment_ids=shared["segment_ids"],
            score_at=shared["score_at"],
        )
        with model.disable_adapter():
            base = policy(separate["input_ids"])
    assert (expected - base).abs().max() > 1e-3
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
