"""Control LLM: identity at init, the divergence against its formula and in the objective, only
the trainable copies change, a cached generation, and from_pretrained without remote code."""

import pytest
import torch
from accelerate import Accelerator
from transformers import AutoModelForCausalLM, MixtralConfig, MixtralForCausalLM

from posttrain.config.recipe import AdapterConfig, Recipe
from posttrain.data.batching import Example, collate_padded
from posttrain.errors import UserError
from posttrain.model.adapters import add_adapter
from posttrain.model.logprobs import TokenLogprobs
from posttrain.model.surgery.control_llm import (
    ControlLlamaForCausalLM,
    cosine_divergence,
)
from posttrain.objectives.sft import NextTokenObjective
from posttrain.train.loop import TrainJob, accumulate_gradients

IDS = torch.tensor([[5, 17, 42, 8, 99, 3, 64, 21], [7, 7, 300, 12, 1, 45, 6, 2]])


def _control(tiny_dir, **kwargs):
    return add_adapter(AutoModelForCausalLM.from_pretrained(tiny_dir), AdapterConfig(kind="control_llm", **kwargs))


def _perturb(model):
    with torch.no_grad():
        for block in model.control_blocks():
            for p in block.trained.parameters():
                p.add_(0.05 * torch.randn_like(p))


def test_identity_at_init(tiny_dir):
    base = AutoModelForCausalLM.from_pretrained(tiny_dir)
    model = _control(tiny_dir, blocks=[1], mix=0.3, learn_mix=True)
    assert isinstance(model, ControlLlamaForCausalLM)
    assert torch.equal(model(IDS).logits, base(IDS).logits)
    assert model.auxiliary_losses()["divergence_loss"] < 1e-6


def test_divergence_formula_on_hand_made_states():
    """cos = 0 -> d = 1 -> smooth_l1 = 1 - 0.5; cos = -1 -> d = 2 -> 1.5; cos = 15 / 25 = 0.6 -> d = 0.4 -> 0.5 * 0.16."""
    h = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [3.0, 4.0]]])
    other = torch.tensor([[[0.0, 2.0], [-1.0, 0.0], [5.0, 0.0]]])
    expected = (0.5 + 1.5 + 0.08) / 3
    assert abs(float(cosine_divergence(h, other)) - expected) < 1e-6
    assert float(cosine_divergence(h, 2 * h)) < 1e-7
    zero = torch.zeros(1, 1, 2)  # a zero state has no direction: left out of the mean
    assert abs(float(cosine_divergence(torch.cat([h, zero], 1), torch.cat([other, zero], 1))) - expected) < 1e-6


def test_divergence_is_in_the_objective_and_only_copies_train(tiny_dir):
    model = _control(tiny_dir, blocks=[0], divergence_weight=2.0)
    _perturb(model)
    with torch.no_grad():  # the expected divergence from the frozen and trained branches directly
        block = model.control_blocks()[0]
        h0 = model.model.embed_tokens(IDS)
        pos = model.model.rotary_emb(h0, torch.arange(IDS.shape[1])[None])
        expected = cosine_divergence(
            block.frozen(h0, position_embeddings=pos), block.trained(h0, position_embeddings=pos)
        )
        nll = model(IDS, labels=IDS).loss
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
    stats = accumulate_gradients(job, policy, [collate_padded([Example(r, r) for r in IDS.tolist()], 0)])
    assert abs(float(stats["divergence_loss"]) - 2.0 * float(expected)) < 1e-5
    assert abs(float(stats["loss"]) - float(nll) - 2.0 * float(expected)) < 1e-4
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad and all(n.startswith("model.layers.0.trained.") for n in with_grad)


def test_cached_generation_matches_uncached_and_saved_model_loads(tiny_dir, tmp_path):
    model = _control(tiny_dir, blocks=[0, 1], learn_mix=True)
    _perturb(model)
    model.eval()
    kwargs = dict(max_new_tokens=6, do_sample=False, pad_token_id=0)
    cached = model.generate(IDS[:1], use_cache=True, **kwargs)
    assert torch.equal(cached, model.generate(IDS[:1], use_cache=False, **kwargs))
    model.save_pretrained(tmp_path / "c")
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "c", trust_remote_code=False)
    assert type(again) is ControlLlamaForCausalLM and again.config.control_blocks == [0, 1]
    assert torch.equal(again(IDS).logits, model(IDS).logits)


@pytest.mark.parametrize(
    "kwargs, fragment", [(dict(blocks=[2]), "block index 2 out of range"), (dict(mix=1.0), "strictly between 0 and 1")]
)
def test_bad_settings(tiny_dir, kwargs, fragment):
    with pytest.raises(UserError, match=fragment):
        _control(tiny_dir, **kwargs)


def test_not_a_llama():
    moe = MixtralForCausalLM(
        MixtralConfig(
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=64,
            vocab_size=64,
        )
    )
    with pytest.raises(UserError, match="needs a Llama causal LM"):
        add_adapter(moe, AdapterConfig(kind="control_llm"))
