"""MoE router load-balancing loss reaches the objective through the one training loop."""

import pytest
import torch
from accelerate import Accelerator
from transformers import (
    AutoTokenizer,
    JetMoeConfig,
    JetMoeForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MixtralConfig,
    MixtralForCausalLM,
)

from posttrain.config.recipe import Recipe
from posttrain.data.batching import Example, collate_padded
from posttrain.model.logprobs import TokenLogprobs
from posttrain.model.router_loss import router_aux_for
from posttrain.objectives.sft import NextTokenObjective
from posttrain.train.loop import TrainJob, accumulate_gradients

SIZES = dict(
    hidden_size=32, num_hidden_layers=2, num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64
)


@pytest.fixture(scope="module")
def batch(tiny_dir):
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    texts = ["The child adds seven apples after school.", "Twelve is an even number, and 7 is odd."]
    rows = [tok(t)["input_ids"] for t in texts]
    n = min(map(len, rows))  # equal lengths: no padding, so transformers' mean matches exactly
    examples = [Example(r[:n], r[:n]) for r in rows]
    return collate_padded(examples, pad_id=0), len(tok), examples


def _mixtral(vocab):
    torch.manual_seed(0)
    return MixtralForCausalLM(
        MixtralConfig(
            **SIZES,
            num_attention_heads=4,
            vocab_size=vocab,
            num_local_experts=4,
            num_experts_per_tok=2,
            router_aux_loss_coef=0.5,
        )
    )


def _train_stats(model, micro_batches):
    policy = TokenLogprobs(model)
    job = TrainJob(
        recipe=Recipe(),
        out_dir=None,
        accelerator=Accelerator(cpu=True),
        policy=policy,
        tokenizer=None,
        plan=None,
        objective=NextTokenObjective(),
    )
    return accumulate_gradients(job, policy, micro_batches)


def _reference(model, mb):
    """transformers' own training loss: mean token NLL + coef * aux (router logits on)."""
    model.zero_grad()
    out = model(input_ids=mb["input_ids"], labels=mb["labels"], output_router_logits=True)
    out.loss.backward()
    return out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_mixtral_loss_and_gradients_equal_transformers_forward_with_labels(batch):
    mb, vocab, _ = batch
    model = _mixtral(vocab)
    ref, ref_grads = _reference(model, mb)
    model.zero_grad()
    stats = _train_stats(model, [mb])
    assert abs(float(stats["loss"]) - ref.loss.item()) < 1e-5
    assert abs(float(stats["router_aux_loss"]) - 0.5 * ref.aux_loss.item()) < 1e-6
    assert float(stats["router_aux_loss"]) > 0.4  # E * sum f*P >= 1 at any routing, times 0.5
    gate = model.model.layers[0].mlp.gate.weight.grad
    assert gate is not None and gate.abs().sum() > 0
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref_grads[name], atol=1e-5, rtol=1e-4, msg=name)


def test_router_gradient_comes_from_the_aux_loss(batch):
    """With coefficient 0 the router still gets the LM gradient, but a different one."""
    mb, vocab, _ = batch
    with_aux = _mixtral(vocab)
    _train_stats(with_aux, [mb])
    without = _mixtral(vocab)
    without.config.router_aux_loss_coef = 0.0
    stats = _train_stats(without, [mb])
    assert "router_aux_loss" not in stats
    g1, g0 = (m.model.layers[1].mlp.gate.weight.grad for m in (with_aux, without))
    assert (g1 - g0).abs().max() > 1e-4


def test_router_loss_is_a_mean_over_micro_batches(batch):
    _, vocab, examples = batch
    halves = [collate_padded([ex], pad_id=0) for ex in examples]
    model = _mixtral(vocab)
    stats = _train_stats(model, halves)
    expected = []
    for half in halves:
        out = model(input_ids=half["input_ids"], output_router_logits=True)
        expected.append(0.5 * out.aux_loss.item())
    assert abs(float(stats["router_aux_loss"]) - sum(expected) / 2) < 1e-6


def test_jetmoe_uses_its_own_coefficient_and_matches_transformers(batch):
    mb, vocab, _ = batch
    torch.manual_seed(0)
    model = JetMoeForCausalLM(
        JetMoeConfig(
            **SIZES, kv_channels=8, vocab_size=vocab, num_local_experts=4, num_experts_per_tok=2, aux_loss_coef=0.3
        )
    )
    ref, _ = _reference(model, mb)
    model.zero_grad()
    stats = _train_stats(model, [mb])
    assert abs(float(stats["loss"]) - ref.loss.item()) < 1e-5


def test_dense_llama_is_unchanged(batch):
    mb, vocab, _ = batch
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**SIZES, num_attention_heads=4, vocab_size=vocab))
    assert router_aux_for(model) is None
    ref = model(input_ids=mb["input_ids"], labels=mb["labels"])
    stats = _train_stats(model, [mb])
    assert "router_aux_loss" not in stats
    assert abs(float(stats["loss"]) - ref.loss.item()) < 1e-5


def test_formula_on_hand_made_router_logits():
    """Two experts, top-1, both tokens sure of expert 0: f = (1, 0), P = (~1, ~0), so
    aux = E * sum f*P = 2 * 1 * 1 = 2; balanced routing (+10, -10 and -10, +10) gives 2 * (1/2 * 1/2) * 2 = 1."""
    model = _mixtral(16)
    router = router_aux_for(model)
    router = type(router)(coef=1.0, num_experts=2, top_k=1, loss_fn=router.loss_fn)
    collapsed = torch.tensor([[10.0, -10.0], [10.0, -10.0]])
    balanced = torch.tensor([[10.0, -10.0], [-10.0, 10.0]])
    assert abs(float(router((collapsed,), None)) - 2.0) < 1e-6
    assert abs(float(router((balanced,), None)) - 1.0) < 1e-6


def test_no_grad_forwards_record_nothing(batch):
    mb, vocab, _ = batch
    policy = TokenLogprobs(_mixtral(vocab))
    with torch.no_grad():
        policy(mb["input_ids"], mb["labels"])
    assert policy.take_aux_losses() == {}
