"""LLaMA Pro block expansion: identity at init, a plain Llama on disk, only new blocks train."""

import pytest
import torch
from transformers import AutoModelForCausalLM, MixtralConfig, MixtralForCausalLM

from posttrain.config.recipe import AdapterConfig
from posttrain.errors import UserError
from posttrain.model.adapters import add_adapter
from posttrain.model.surgery.expand import (
    NEW_BLOCKS_KEY,
    expand_blocks,
    insertion_points,
)

IDS = torch.tensor([[5, 17, 42, 8, 99, 3, 64, 21], [7, 7, 300, 12, 1, 45, 6, 2]])


def test_insertion_points():
    assert insertion_points(4, every=2) == [1, 3]  # the paper's interleaving: after each group of k
    assert insertion_points(4, every=1) == [0, 1, 2, 3]
    assert insertion_points(4, blocks=[3, 0, 3]) == [0, 3]


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(blocks=[4]), "block index 4 out of range"),
        (dict(blocks=[-1]), "block index -1 out of range"),
        (dict(every=5), "--every must be in 1..4"),
        (dict(), "exactly one of"),
    ],
)
def test_bad_block_choices_are_one_line_errors(kwargs, fragment):
    with pytest.raises(UserError, match=fragment):
        insertion_points(4, **kwargs)


def test_expanded_model_equals_the_original_exactly(tiny_dir, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    before = model(IDS).logits
    new = expand_blocks(model, [0, 1])
    assert new == [1, 3] and model.config.num_hidden_layers == 4
    assert [layer.self_attn.layer_idx for layer in model.model.layers] == [0, 1, 2, 3]
    assert torch.equal(model(IDS).logits, before)
    assert model.model.layers[1].mlp.down_proj.weight.abs().sum() == 0
    torch.testing.assert_close(model.model.layers[1].mlp.up_proj.weight, model.model.layers[0].mlp.up_proj.weight)
    model.save_pretrained(tmp_path / "x")
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "x")  # a plain Llama with more layers
    assert type(again).__name__ == "LlamaForCausalLM" and len(again.model.layers) == 4
    assert getattr(again.config, NEW_BLOCKS_KEY) == [1, 3]
    assert torch.equal(again(IDS).logits, before)
    # generation with the KV cache sees the renumbered layers
    base = AutoModelForCausalLM.from_pretrained(tiny_dir)
    kwargs = dict(max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert torch.equal(again.generate(IDS[:1], **kwargs), base.generate(IDS[:1], **kwargs))


def test_llama_pro_adapter_changes_only_the_new_blocks(tiny_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    expand_blocks(model, [1])
    model = add_adapter(model, AdapterConfig(kind="llama_pro"))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("model.layers.2.") for n in trainable)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):  # the first step moves only o_proj/down_proj (everything else sees a zero path)
        model(IDS, labels=IDS).loss.backward()
        opt.step()
        opt.zero_grad()
    for name, p in model.named_parameters():
        changed = not torch.equal(p, before[name])
        assert changed == (name in trainable), name


def test_llama_pro_needs_an_expanded_model(tiny_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    with pytest.raises(UserError, match="posttrain surgery expand"):
        add_adapter(model, AdapterConfig(kind="llama_pro"))


def test_expansion_refuses_an_moe_block():
    model = MixtralForCausalLM(
        MixtralConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=64,
            vocab_size=64,
            num_local_experts=2,
        )
    )
    with pytest.raises(UserError, match="Llama-style"):
        expand_blocks(model, [0])
