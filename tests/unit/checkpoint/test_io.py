"""Atomic checkpoints: layout, latest/keep_last bookkeeping, crash leftovers, exact resume, final export."""

import json

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from posttrain.checkpoint.io import (
    latest_checkpoint,
    load_training_state,
    save_checkpoint,
    save_final,
)
from posttrain.errors import UserError
from posttrain.train.optim import build_optimizer, build_scheduler

TINY = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=128,
    vocab_size=300,
    max_position_embeddings=128,
)


def tiny_model(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(**TINY))


def optim_for(model):
    optimizer = build_optimizer(model, lr=1e-2, weight_decay=0.1)
    return optimizer, build_scheduler(optimizer, "cosine", total_steps=10, warmup_steps=2)


def train_steps(model, optimizer, scheduler, steps: int) -> None:
    """Batches come from torch's global RNG, so a correct resume must also restore the RNG."""
    for _ in range(steps):
        batch = torch.randint(0, TINY["vocab_size"], (2, 8))
        model(input_ids=batch, labels=batch).loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()


def save(root, step, model, optimizer, scheduler, **kwargs):
    return save_checkpoint(
        root,
        step,
        model,
        None,
        optimizer,
        scheduler,
        trainer_state={"tokens_seen": 16 * step},
        recipe={"stage": "sft", "lr": 1e-2},
        **kwargs,
    )


def test_checkpoint_layout_and_contents(tmp_path):
    model = tiny_model()
    optimizer, scheduler = optim_for(model)
    ckpt = save(tmp_path, 3, model, optimizer, scheduler)
    assert ckpt == tmp_path / "step-00000003"
    names = {path.name for path in ckpt.iterdir()}
    assert {"config.json", "model.safetensors", "recipe.yaml", "trainer_state.json", "optim.pt"} <= names
    assert json.loads((ckpt / "trainer_state.json").read_text()) == {"tokens_seen": 48, "step": 3}
    assert yaml.safe_load((ckpt / "recipe.yaml").read_text()) == {"stage": "sft", "lr": 1e-2}
    assert not list(tmp_path.glob(".tmp-*"))


def test_latest_skips_incomplete_and_tmp_dirs_and_keep_last_prunes(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    model = tiny_model()
    optimizer, scheduler = optim_for(model)
    for step in (1, 2, 10):
        save(tmp_path, step, model, optimizer, scheduler)
    (tmp_path / "step-00000099").mkdir()  # no optim.pt: not a checkpoint
    (tmp_path / ".tmp-step-00000200").mkdir()
    assert latest_checkpoint(tmp_path) == tmp_path / "step-00000010"
    save(tmp_path, 11, model, optimizer, scheduler, keep_last=2)
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-00000010", "step-00000011", "step-00000099"]
    assert not list(tmp_path.glob(".tmp-*"))  # the stale temp dir went with the next save


def test_failed_write_leaves_no_checkpoint_behind(tmp_path):
    model = tiny_model()
    optimizer, scheduler = optim_for(model)
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path, 1, model, None, optimizer, scheduler, trainer_state={"bad": object()}, recipe={})
    assert list(tmp_path.iterdir()) == []


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path):
    model = tiny_model()
    optimizer, scheduler = optim_for(model)
    train_steps(model, optimizer, scheduler, 3)
    ckpt = save(tmp_path, 3, model, optimizer, scheduler)
    train_steps(model, optimizer, scheduler, 2)
    uninterrupted = model.state_dict()

    resumed = LlamaForCausalLM.from_pretrained(ckpt)
    optimizer, scheduler = optim_for(resumed)
    state = load_training_state(ckpt, optimizer, scheduler)
    assert state["step"] == 3 and scheduler.last_epoch == 3
    train_steps(resumed, optimizer, scheduler, 2)
    for name, tensor in resumed.state_dict().items():
        torch.testing.assert_close(tensor, uninterrupted[name], rtol=0, atol=0, msg=name)


def test_load_training_state_rejects_incomplete_dir(tmp_path):
    model = tiny_model()
    optimizer, scheduler = optim_for(model)
    with pytest.raises(UserError, match="not a complete checkpoint"):
        load_training_state(tmp_path, optimizer, scheduler)


def test_final_loads_with_auto_model_and_replaces_previous(tmp_path):
    save_final(tmp_path, tiny_model(seed=1), None)
    model = tiny_model(seed=2)
    final = save_final(tmp_path, model, None)
    assert final == tmp_path / "final" and (final / "model.safetensors").is_file()
    loaded = AutoModelForCausalLM.from_pretrained(final)
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model.eval()(ids).logits)
    assert not list(tmp_path.glob(".tmp-*"))


def test_peft_checkpoint_and_final_hold_only_the_adapter(tmp_path):
    peft = pytest.importorskip("peft")
    model = peft.get_peft_model(tiny_model(), peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    optimizer, scheduler = optim_for(model)
    ckpt = save(tmp_path, 1, model, optimizer, scheduler)
    names = {path.name for path in ckpt.iterdir()}
    assert "adapter_model.safetensors" in names and "model.safetensors" not in names
    final = {path.name for path in save_final(tmp_path, model, None).iterdir()}
    assert "adapter_model.safetensors" in final and "model.safetensors" not in final


def test_tokenizer_is_saved_beside_the_weights(tmp_path, tiny_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    optimizer, scheduler = optim_for(model)
    ckpt = save_checkpoint(tmp_path, 5, model, tokenizer, optimizer, scheduler, trainer_state={}, recipe={})
    final = save_final(tmp_path, model, tokenizer)
    for directory in (ckpt, final):
        assert AutoTokenizer.from_pretrained(directory)("two plus two").input_ids == tokenizer("two plus two").input_ids


def test_write_error_is_one_line_naming_the_path_and_keeps_what_was_there(tmp_path, monkeypatch):
    import errno
    import os

    from posttrain.checkpoint import io

    model = tiny_model()
    optimizer, scheduler = optim_for(model)
    save(tmp_path, 2, model, optimizer, scheduler)
    before = (tmp_path / "step-00000002" / "optim.pt").read_bytes()

    def disk_full(obj, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(io, "_torch_save", disk_full)
    for step in (4, 2):  # a new checkpoint, and one replacing an existing name
        with pytest.raises(UserError, match=rf"step-0000000{step}/optim.pt: cannot write .*No space left"):
            save(tmp_path, step, model, optimizer, scheduler)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000002"]
    assert (tmp_path / "step-00000002" / "optim.pt").read_bytes() == before


def test_files_get_the_umask_permissions(tmp_path):
    """transformers writes model.safetensors 0600; other users must be able to load a shared model."""
    import os

    model = tiny_model()
    old = os.umask(0o022)
    try:
        final = save_final(tmp_path, model, None)
        ckpt = save(tmp_path / "ckpt", 1, model, *optim_for(model))
    finally:
        os.umask(old)
    for path in [*final.iterdir(), *ckpt.iterdir()]:
        assert path.stat().st_mode & 0o777 == 0o644, path
