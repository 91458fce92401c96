"""Lean MLP / RMSNorm forwards: the model's values and gradients, fewer tensors kept for backward."""

import copy

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from posttrain.model.lean_layers import _RMSNorm, _SwiGLU, _SwiGLUDown, use_lean_layers


def tiny_llama(**overrides) -> LlamaForCausalLM:
    torch.manual_seed(0)
    kw = dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=48,
        vocab_size=64,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(LlamaConfig(**{**kw, **overrides})).float()


def saved_bytes(fn) -> int:
    """Bytes of the distinct storages autograd keeps for backward while fn() runs (parameters excluded)."""
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, storages


def test_swiglu_functions_match_autograd_of_the_formula_by_hand():
    torch.manual_seed(1)
    gate, up = (
        torch.randn(3, 5, 7, dtype=torch.float64, requires_grad=True),
        torch.randn(3, 5, 7, dtype=torch.float64, requires_grad=True),
    )
    weight = torch.randn(4, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_SwiGLU.apply, (gate, up))
    assert torch.autograd.gradcheck(_SwiGLUDown.apply, (gate, up, weight))
    # silu(g) = g * sigmoid(g): at g = 0 the product is 0 and d/dgate = up / 2
    g, u = torch.zeros(1, requires_grad=True), torch.full((1,), 3.0, requires_grad=True)
    _SwiGLU.apply(g, u).sum().backward()
    assert g.grad.item() == pytest.approx(1.5) and u.grad.item() == 0.0


def test_rmsnorm_function_matches_autograd_of_the_formula():
    # it computes in float32 as LlamaRMSNorm does, so it is compared with autograd there
    torch.manual_seed(2)
    x = torch.randn(2, 3, 8, requires_grad=True)
    weight = torch.randn(8, requires_grad=True)
    upstream = torch.randn(2, 3, 8)
    by_hand = weight * x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
    expected = torch.autograd.grad((by_hand * upstream).sum(), (x, weight))
    out = _RMSNorm.apply(x, weight, 1e-6)
    torch.testing.assert_close(out, by_hand)
    for got, want in zip(torch.autograd.grad((out * upstream).sum(), (x, weight)), expected):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_lean_model_gives_the_same_loss_and_gradients_and_keeps_less():
    plain = tiny_llama()
    lean = copy.deepcopy(plain)
    assert use_lean_layers(lean) == 2 * (1 + 2) + 1  # a layer: its MLP and 2 norms; the final norm
    assert use_lean_layers(lean) == 0  # already lean
    ids = torch.randint(0, 64, (3, 20), generator=torch.Generator().manual_seed(3))
    losses, kept = [], []
    for model in (plain, lean):
        out, storages = saved_bytes(lambda m=model: m(input_ids=ids, labels=ids).loss)
        out.backward()
        params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        losses.append(out.detach())
        kept.append(sum(v for k, v in storages.items() if k not in params))
    assert torch.equal(losses[0], losses[1])  # the same forward ops in the same order
    for (name, a), b in zip(plain.named_parameters(), lean.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-6, msg=name)
    assert kept[1] < 0.8 * kept[0], kept


def test_lean_model_saves_and_reloads_as_the_plain_class(tmp_path):
    lean = tiny_llama()
    use_lean_layers(lean)
    lean.save_pretrained(tmp_path)
    again = LlamaForCausalLM.from_pretrained(tmp_path)
    assert type(again.model.layers[0].mlp).__name__ == "LlamaMLP"
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        torch.testing.assert_close(again(ids).logits, lean(ids).logits)


def test_lora_down_projection_keeps_its_module_and_other_activations_are_left_alone():
    peft = pytest.importorskip("peft")
    model = peft.get_peft_model(tiny_llama(), peft.LoraConfig(r=2, target_modules=["down_proj"]))
    use_lean_layers(model)
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    model(input_ids=ids, labels=ids).loss.backward()
    lora = model.base_model.model.model.layers[0].mlp.down_proj
    assert lora.lora_B["default"].weight.grad is not None
    gelu = tiny_llama(hidden_act="gelu")
    assert use_lean_layers(gelu) == 5  # the norms only


def test_no_grad_and_autocast_use_the_models_own_forward(monkeypatch):
    import posttrain.model.lean_layers as lean_layers

    plain, lean = tiny_llama(), tiny_llama()
    use_lean_layers(lean)
    calls = []
    for name in ("_SwiGLUDown", "_RMSNorm"):
        fn = getattr(lean_layers, name)
        monkeypatch.setattr(fn, "apply", lambda *a, _f=fn.apply, _n=name: calls.append(_n) or _f(*a))
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        torch.testing.assert_close(lean(ids).logits, plain(ids).logits, rtol=0, atol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = lean(input_ids=ids, labels=ids).loss, plain(input_ids=ids, labels=ids).loss
    assert torch.equal(a, b) and calls == []  # neither path went through the lean functions
    a.backward()
    lean(input_ids=ids, labels=ids).loss.backward()
    assert calls.count("_SwiGLUDown") == 2 and calls.count("_RMSNorm") == 5  # with grad, no autocast
