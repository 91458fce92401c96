"""LLaMA-Adapter V2: identity at init, the prompt attention against its formula, only the V2
parameters change, and a saved adapter loads back through posttrain's loaders."""

import math

import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

from posttrain.config.recipe import AdapterConfig
from posttrain.errors import UserError
from posttrain.model.adapters import (
    adapter_base,
    add_adapter,
    is_adapter_dir,
    load_adapter,
)
from posttrain.model.surgery.llama_adapter import AdaptionPrompt, prompt_attention

IDS = torch.tensor([[5, 17, 42, 8, 99, 3, 64, 21], [7, 7, 300, 12, 1, 45, 6, 2]])
V2 = AdapterConfig(kind="llama_adapter_v2", prompt_length=3, prompt_layers=1)


def _adapted(tiny_dir, cfg=V2):
    return add_adapter(AutoModelForCausalLM.from_pretrained(tiny_dir), cfg)


def test_adapted_model_equals_the_base_at_init(tiny_dir):
    base = AutoModelForCausalLM.from_pretrained(tiny_dir)
    adapted = _adapted(tiny_dir, AdapterConfig(kind="llama_adapter_v2", prompt_length=4))
    assert torch.equal(adapted(IDS).logits, base(IDS).logits)
    with torch.no_grad():  # the prompts are live: open one gate and the output moves
        adapted.base_model.model.layers[1].self_attn.adaption.gate.fill_(1.0)
    assert not torch.allclose(adapted(IDS).logits, base(IDS).logits)


def test_trainable_set_is_prompts_gates_bias_scale_and_norms(tiny_dir):
    adapted = _adapted(tiny_dir)
    names = {n for n, p in adapted.named_parameters() if p.requires_grad}
    assert any("layers.1.self_attn.adaption.prompt" in n for n in names)
    assert not any("layers.0.self_attn.adaption" in n for n in names)  # only the top 1 layer
    for n in names:
        assert "adaption" in n or n.endswith(("adapter_bias", "adapter_scale")) or "norm" in n, n
    assert "base_model.model.layers.0.mlp.down_proj.adapter_scale" in names
    assert "base_model.lm_head.adapter_bias" not in names  # the head is not a decoder linear


def test_only_these_parameters_change(tiny_dir):
    adapted = _adapted(tiny_dir)
    before = {n: p.detach().clone() for n, p in adapted.named_parameters()}
    trainable = {n for n, p in adapted.named_parameters() if p.requires_grad}
    opt = torch.optim.AdamW([p for p in adapted.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        adapted(IDS, labels=IDS).loss.backward()
        opt.step()
        opt.zero_grad()
    for name, p in adapted.named_parameters():
        assert torch.equal(p, before[name]) != (name in trainable), name


def test_prompt_attention_against_the_formula():
    """One layer, 4 query heads sharing 2 KV heads, no RoPE:
    out_h = tanh(g_h) * softmax(q_h K_h^T / sqrt(d)) V_h with K, V from k_proj/v_proj of the prompts."""
    torch.manual_seed(0)
    d, heads, kv, hidden, K = 4, 4, 2, 16, 3
    attn = torch.nn.Module()
    attn.head_dim = d
    attn.q_proj, attn.k_proj = (
        torch.nn.Linear(hidden, heads * d, bias=False),
        torch.nn.Linear(hidden, kv * d, bias=False),
    )
    attn.v_proj = torch.nn.Linear(hidden, kv * d, bias=False)
    ad = AdaptionPrompt(K, hidden, heads, torch.float32)
    with torch.no_grad():
        ad.gate.copy_(torch.tensor([0.5, -1.0, 0.0, 2.0]))
    x = torch.randn(2, 5, hidden)
    got = prompt_attention(attn, ad, x, None, None)
    q = x @ attn.q_proj.weight.T  # [2, 5, 16]
    k, v = ad.prompt @ attn.k_proj.weight.T, ad.prompt @ attn.v_proj.weight.T  # [3, 8]
    expected = torch.zeros(2, 5, heads * d)
    for h in range(heads):
        g = h // 2  # query heads 0,1 -> kv head 0; 2,3 -> kv head 1
        qh, kh, vh = q[..., h * d : (h + 1) * d], k[:, g * d : (g + 1) * d], v[:, g * d : (g + 1) * d]
        w = torch.softmax(qh @ kh.T / math.sqrt(d), dim=-1)
        expected[..., h * d : (h + 1) * d] = math.tanh(ad.gate[h].item()) * (w @ vh)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


def test_bias_and_scale_are_y_equals_s_times_wx_plus_b(tiny_dir):
    adapted = _adapted(tiny_dir)
    lin = adapted.base_model.model.layers[0].mlp.up_proj
    with torch.no_grad():
        lin.adapter_bias.uniform_(-1, 1)
        lin.adapter_scale.uniform_(0.5, 2)
    x = torch.randn(3, lin.in_features)
    torch.testing.assert_close(lin(x), lin.adapter_scale * (x @ lin.weight.T + lin.adapter_bias))


def test_saved_adapter_loads_back(tiny_dir, tmp_path):
    adapted = _adapted(tiny_dir)
    with torch.no_grad():
        for p in adapted.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    expected = adapted(IDS).logits
    adapted.save_pretrained(tmp_path / "a")
    assert is_adapter_dir(tmp_path / "a") and adapter_base(tmp_path / "a") == str(tiny_dir)
    saved = (tmp_path / "a" / "adapter_model.safetensors").stat().st_size
    assert saved < (tiny_dir / "model.safetensors").stat().st_size / 5  # only the adapter
    again = load_adapter(AutoModelForCausalLM.from_pretrained(tiny_dir), tmp_path / "a", trainable=False)
    assert torch.equal(again(IDS).logits, expected)
    assert not any(p.requires_grad for p in again.parameters())


def test_adapter_kind_that_does_not_fit(tiny_dir):
    with pytest.raises(UserError, match="prompt_layers: 3 out of range"):
        _adapted(tiny_dir, AdapterConfig(kind="llama_adapter_v2", prompt_layers=3))
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50))
    with pytest.raises(UserError, match="Llama-style"):
        add_adapter(gpt2, V2)
