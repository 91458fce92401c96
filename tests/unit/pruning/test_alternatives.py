"""The replacement library (pruning/alternatives.py) and blockwise local distillation
(pruning/local_distill.py) on the tiny test Llama (hidden 64, 4 heads of 16, 2 KV heads, FFN 128)."""

import math

import pytest
import torch
from torch import nn
from transformers import AutoModelForCausalLM

from posttrain.errors import UserError
from posttrain.pruning import alternatives as alt
from posttrain.pruning.local_distill import (
    branch_error,
    imitation_error,
    local_distill,
    parent_activations,
)


@pytest.fixture(scope="module")
def parent(tiny_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    return model.requires_grad_(False)


@pytest.fixture(scope="module")
def acts(parent):
    gen = torch.Generator().manual_seed(0)
    return parent_activations(parent, [torch.randint(6, 600, (4, 32), generator=gen) for _ in range(3)])


def _numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("kv", [2, 1, 0])
def test_attention_alternatives_shapes_and_parameter_counts(parent, kv):
    layer, config = parent.model.layers[0], parent.config
    branch = alt.attention_branch(layer, config, kv)
    # by hand: q, o 64x64 each; k, v 64 x (kv * 16) each; the input RMSNorm 64
    expected = 0 if kv == 0 else 2 * 64 * 64 + 2 * 64 * kv * 16 + 64
    assert alt.attention_params(config, kv) == expected == _numel(branch)
    if kv:
        assert branch.attention.k_proj.weight.shape == (kv * 16, 64)
        assert branch.attention.num_key_value_groups == 4 // kv


@pytest.mark.parametrize("width", [128, 64, 32, 0])
def test_ffn_alternatives_shapes_and_parameter_counts(parent, width):
    layer, config = parent.model.layers[0], parent.config
    branch = alt.ffn_branch(layer, config, width, torch.arange(128.0))
    expected = 0 if width == 0 else 3 * 64 * width + 64
    assert alt.ffn_params(config, width) == expected == _numel(branch)
    if width:
        assert branch.mlp.down_proj.weight.shape == (64, width)


def test_kv_heads_are_mean_pooled_over_the_heads_a_group_served(parent):
    attention = parent.model.layers[0].self_attn
    pooled = alt.pooled_attention(attention, parent.config, 1)
    k = attention.k_proj.weight  # rows: head 0 (0..15), head 1 (16..31)
    assert torch.allclose(pooled.k_proj.weight, (k[:16] + k[16:]) / 2)
    assert torch.equal(pooled.q_proj.weight, attention.q_proj.weight)


def test_channel_importance_and_pruning_by_hand():
    config = type("C", (), {"hidden_size": 2, "intermediate_size": 3, "mlp_bias": False, "hidden_act": "silu"})()
    from transformers.models.llama.modeling_llama import LlamaMLP

    mlp = LlamaMLP(config)
    with torch.no_grad():
        mlp.gate_proj.weight.copy_(torch.tensor([[1.0, 0], [0, 1.0], [1.0, 1.0]]))
        mlp.up_proj.weight.copy_(torch.tensor([[1.0, 0], [0, 2.0], [0, 0.1]]))
        mlp.down_proj.weight.copy_(torch.tensor([[1.0, 1.0, 1.0], [0, 0, 0]]))
    x = torch.tensor([[[1.0, 1.0]]])
    silu = lambda v: v / (1 + torch.exp(torch.tensor(-v)))  # noqa: E731
    # |silu(gate_j x) * up_j x| * ||down[:, j]||: 0.731 * 1, 0.731 * 2, 0.881 * 0.1
    expected = torch.tensor([silu(1.0), 2 * silu(1.0), 0.1 * silu(2.0)])
    assert torch.allclose(alt.channel_importance(mlp, x), expected, atol=1e-6)
    pruned = alt.pruned_mlp(mlp, config, 2, expected)
    assert torch.equal(pruned.up_proj.weight, mlp.up_proj.weight[:2])  # channels 0 and 1 kept


def test_unknown_alternatives_are_one_line_errors(parent):
    with pytest.raises(UserError, match="alternatives.attention: unknown alternative 'kv3'"):
        alt.attention_options(parent.config, ["kv3"])
    with pytest.raises(UserError, match="alternatives.ffn: unknown alternative 'half'"):
        alt.ffn_options(parent.config, ["half"])
    assert alt.ffn_options(parent.config, ["ffn50", "noop"]) == [128, 64, 0]


def test_imitation_error_is_the_normalised_squared_error():
    target, prediction = torch.tensor([[3.0, 4.0]]), torch.tensor([[3.0, 2.0]])
    assert imitation_error(prediction, target).item() == pytest.approx(4 / 25)


def test_the_parents_own_branches_imitate_it_exactly(parent, acts):
    layer = parent.model.layers[1]
    assert branch_error(alt.attention_branch(layer, parent.config, 2), acts[1]) < 1e-10
    assert branch_error(alt.ffn_branch(layer, parent.config, 128, torch.arange(128.0)), acts[1]) < 1e-10


def test_local_distillation_lowers_the_imitation_error(parent, acts):
    layer, config = parent.model.layers[1], parent.config
    with torch.no_grad():
        importance = alt.channel_importance(layer.mlp, layer.post_attention_layernorm(acts[1].middle(0)))
    for branch in (alt.attention_branch(layer, config, 1), alt.ffn_branch(layer, config, 32, importance)):
        before = branch_error(branch, acts[1])
        local_distill(branch, acts[1], steps=60, lr=3e-3)
        after = branch_error(branch, acts[1])
        assert after < 0.7 * before, (type(branch).__name__, before, after)


def test_kl_score_by_hand():
    from types import SimpleNamespace

    from posttrain.pruning.local_distill import kl_to_parent

    logits = torch.log(torch.tensor([[[0.5, 0.5], [0.9, 0.1]]]))  # one row, two positions
    model = lambda input_ids, use_cache: SimpleNamespace(logits=logits)  # noqa: E731
    parent = [torch.log(torch.tensor([[[0.25, 0.75], [0.9, 0.1]]]))]
    # KL(p || q) at position 0: 0.25 ln(0.5) + 0.75 ln(1.5); at position 1: 0; mean over 2 tokens
    expected = (0.25 * math.log(0.5) + 0.75 * math.log(1.5)) / 2
    assert kl_to_parent(model, [torch.zeros(1, 2, dtype=torch.long)], parent) == pytest.approx(expected)


def test_scoring_restores_the_layer_and_the_parents_variant_scores_zero(parent):
    from posttrain.pruning.local_distill import next_token_logprobs, score_variants

    batches = [torch.randint(6, 600, (2, 16), generator=torch.Generator().manual_seed(1))]
    layer, config = parent.model.layers[0], parent.config
    before = {k: v.clone() for k, v in parent.state_dict().items()}
    own = (alt.attention_branch(layer, config, 2), alt.ffn_branch(layer, config, 128, torch.arange(128.0)))
    cut = (alt.attention_branch(layer, config, 0), alt.ffn_branch(layer, config, 0, torch.arange(128.0)))
    scores = score_variants(parent, 0, [own, cut], batches, next_token_logprobs(parent, batches))
    assert scores[0] == pytest.approx(0.0, abs=1e-9) and scores[1] > 1e-4
    after = parent.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
