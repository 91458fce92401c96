"""The heterogeneous Llama (pruning/hetero_llama.py): the parent's configuration reproduces the
parent exactly; no-op and narrowed blocks save, load through AutoModelForCausalLM and generate
with the KV cache as without it."""

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

import posttrain.model.load  # noqa: F401  the loader registers puzzle_llama
from posttrain.model.hetero_llama import (
    PuzzleLlamaForCausalLM,
    parent_block,
    puzzle_config,
)

MIXED = [{"kv_heads": 0, "intermediate_size": 32}, {"kv_heads": 1, "intermediate_size": 0}]


@pytest.fixture(scope="module")
def parent(tiny_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_dir).eval()


def _ids():
    return torch.randint(6, 500, (2, 11), generator=torch.Generator().manual_seed(0))


@torch.no_grad()
def test_the_parents_configuration_reproduces_the_parents_logits_exactly(parent):
    blocks = [parent_block(parent.config)] * parent.config.num_hidden_layers
    model = PuzzleLlamaForCausalLM(puzzle_config(parent.config, blocks)).eval()
    model.load_state_dict(parent.state_dict(), strict=True)
    assert torch.equal(model(_ids()).logits, parent(_ids()).logits)


@torch.no_grad()
def test_mixed_blocks_round_trip_and_cached_generation_equals_uncached(parent, tmp_path):
    torch.manual_seed(0)
    model = PuzzleLlamaForCausalLM(puzzle_config(parent.config, MIXED)).eval()
    layers = model.model.layers
    assert type(layers[0].self_attn).__name__ == "NoOpAttention" and layers[0].mlp.down_proj.in_features == 32
    assert layers[1].self_attn.k_proj.out_features == 16 and type(layers[1].mlp).__name__ == "NoOpMLP"
    model.save_pretrained(tmp_path)
    assert AutoConfig.from_pretrained(tmp_path).model_type == "puzzle_llama"
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()  # trust_remote_code off
    assert isinstance(loaded, PuzzleLlamaForCausalLM) and loaded.config.block_configs == MIXED
    assert torch.equal(loaded(_ids()).logits, model(_ids()).logits)
    prompt = _ids()[:, :4]
    cached = loaded.generate(prompt, max_new_tokens=6, do_sample=False)
    seq = prompt
    for _ in range(6):  # greedy without a cache: positions come from the full sequence
        seq = torch.cat([seq, loaded(seq, use_cache=False).logits[:, -1:].argmax(-1)], 1)
    assert torch.equal(cached, seq)


def test_no_op_blocks_hold_no_parameters(parent):
    model = PuzzleLlamaForCausalLM(puzzle_config(parent.config, MIXED))
    assert sum(p.numel() for p in model.model.layers[0].self_attn.parameters()) == 0
    assert not any(n.startswith("model.layers.0.input_layernorm") for n, _ in model.named_parameters())
    assert not any(n.startswith("model.layers.1.mlp") for n, _ in model.named_parameters())


def test_block_configs_that_do_not_fit_are_refused(parent):
    with pytest.raises(ValueError, match="kv_heads 3 must be 0 or divide 4"):
        PuzzleLlamaForCausalLM(puzzle_config(parent.config, [{"kv_heads": 3, "intermediate_size": 8}] * 2))
