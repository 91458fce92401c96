import pytest
import torch
from transformers import AutoModelForCausalLM

from posttrain.checkpoint.io import save_final
from posttrain.config.recipe import AdapterConfig, ModelConfig
from posttrain.errors import UserError
from posttrain.model.adapters import merged_weights
from posttrain.model.load import load_model, load_tokenizer
from posttrain.model.logprobs import token_logprobs
from posttrain.model.merge_lora import merge_adapter_dir

IDS = torch.tensor([[1, 50, 60, 70, 80, 90]])


def _trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("kind", ["lora", "dora"])
def test_adapter_trains_only_its_own_weights(tiny_dir, kind):
    model = load_model(ModelConfig(path=str(tiny_dir)), adapter=AdapterConfig(kind=kind, r=4))
    names = _trainable(model)
    assert names and all("lora_" in n for n in names)
    if kind == "dora":
        assert any("magnitude" in n for n in names)
    logps = token_logprobs(model, IDS, IDS.clone())  # the chunked path goes through peft
    logps.sum().backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if n in names)


def test_target_modules_and_modules_to_save(tiny_dir):
    adapter = AdapterConfig(kind="lora", r=2, target_modules=["q_proj"], modules_to_save=["lm_head"])
    names = _trainable(load_model(ModelConfig(path=str(tiny_dir)), adapter=adapter))
    assert any("q_proj.lora_A" in n for n in names) and not any("v_proj" in n for n in names)
    assert any("lm_head.modules_to_save" in n for n in names)
    with pytest.raises(UserError, match="adapter.target_modules"):
        load_model(ModelConfig(path=str(tiny_dir)), adapter=AdapterConfig(kind="lora", target_modules=["nope"]))


def test_merged_model_equals_the_adapted_model(tiny_dir, tmp_path):
    model = load_model(ModelConfig(path=str(tiny_dir)), adapter=AdapterConfig(kind="lora", r=4))
    with torch.no_grad():  # make the adapter non-trivial (lora_B starts at zero)
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    adapter_dir = save_final(tmp_path / "run", model, load_tokenizer(str(tiny_dir)))
    merged_dir = merge_adapter_dir(adapter_dir, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    assert not (merged_dir / "adapter_config.json").exists()
    with torch.no_grad():
        torch.testing.assert_close(merged(IDS).logits, model.eval()(IDS).logits, atol=1e-5, rtol=1e-4)


def test_qlora_nf4_forward_and_backward_on_cpu(tiny_dir):
    pytest.importorskip("bitsandbytes")
    model = load_model(ModelConfig(path=str(tiny_dir)), adapter=AdapterConfig(kind="qlora", r=4))
    assert any("Linear4bit" in type(m).__name__ for m in model.modules())
    token_logprobs(model, IDS, IDS.clone()).sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_merged_weights_load_into_a_plain_model_and_leave_the_adapter_unmerged(tiny_dir):
    """What a rollout engine (vLLM) is handed: HF checkpoint names, adapter folded in, incl. a
    modules_to_save copy; the training model keeps computing with its separate adapter."""
    adapter = AdapterConfig(kind="lora", r=4, target_modules=["q_proj", "v_proj"], modules_to_save=["lm_head"])
    model = load_model(ModelConfig(path=str(tiny_dir)), adapter=adapter)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n or "modules_to_save" in n:
                p.add_(0.05 * torch.randn_like(p))
    model.eval()
    with torch.no_grad():
        adapted = model(IDS).logits
    plain = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    state = merged_weights(model)
    assert set(state) == set(plain.state_dict())
    plain.load_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(plain(IDS).logits, adapted, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(model(IDS).logits, adapted)  # unmerged again: same outputs
    assert not any(getattr(m, "merged", False) for m in model.modules())


def test_adapter_records_an_absolute_base_path(tiny_dir, tmp_path, monkeypatch):
    """Trial defect 2: a recipe's relative model path was stored in adapter_config.json, so the
    adapter did not load from another working directory."""
    import json

    monkeypatch.chdir(tiny_dir.parent)
    model = load_model(ModelConfig(path=tiny_dir.name), adapter=AdapterConfig(kind="lora", r=2))
    model.save_pretrained(tmp_path / "adapter")
    base = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert base == str(tiny_dir.resolve())
    monkeypatch.chdir(tmp_path)  # elsewhere: the merge finds the base
    out = merge_adapter_dir(tmp_path / "adapter", tmp_path / "merged")
    assert (out / "model.safetensors").is_file()


def _bytes_saved_for_backward(model) -> int:
    """Bytes of the distinct storages autograd keeps from one forward for the backward pass."""
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    ids = torch.randint(0, 200, (4, 64))
    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids, labels=ids)
    return sum(storages.values())


def test_default_lora_keeps_less_for_backward_than_full_fine_tuning(tiny_dir):
    """Trial defect 4: with dropout 0.05 (the old default) peft kept a dropped-out copy of each
    adapted layer's input, and LoRA cost more memory than full fine-tuning."""
    full = _bytes_saved_for_backward(load_model(ModelConfig(path=str(tiny_dir))))
    lora = _bytes_saved_for_backward(load_model(ModelConfig(path=str(tiny_dir)), adapter=AdapterConfig(kind="lora")))
    old_default = _bytes_saved_for_backward(
        load_model(ModelConfig(path=str(tiny_dir)), adapter=AdapterConfig(kind="lora", dropout=0.05))
    )
    assert AdapterConfig().dropout == 0.0
    assert lora < full < old_default, (lora, full, old_default)
