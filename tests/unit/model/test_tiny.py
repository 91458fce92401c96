"""The tiny model is a normal Hugging Face directory: loads with Auto*, deterministic, Llama-3 specials."""

import os

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from posttrain.model.tiny import SPECIAL_TOKENS, build_tiny


def test_loads_with_auto_classes(tiny_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    assert model.config.model_type == "llama"
    assert model.config.vocab_size == len(tokenizer)
    assert not model.config.tie_word_embeddings
    n_params = sum(p.numel() for p in model.parameters())
    assert 50_000 < n_params < 500_000
    out = model(**tokenizer("What is 12 + 34?", return_tensors="pt"))
    assert torch.isfinite(out.logits).all()


def test_bos_added_once_and_only_by_default(tiny_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    with_bos = tokenizer("What is 47 + 38?")["input_ids"]
    without = tokenizer("What is 47 + 38?", add_special_tokens=False)["input_ids"]
    assert with_bos[0] == tokenizer.bos_token_id and with_bos[1:] == without
    assert tokenizer.bos_token_id not in without


def test_digits_are_single_tokens(tiny_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("4738", add_special_tokens=False)["input_ids"])
    assert tokens == ["4", "7", "3", "8"]


def test_llama3_special_tokens(tiny_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    ids = [tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS]
    assert tokenizer.unk_token_id not in ids and len(set(ids)) == len(ids)
    assert tokenizer.bos_token == "<|begin_of_text|>" and tokenizer.eos_token == "<|end_of_text|>"
    assert tokenizer.pad_token == "<|finetune_right_pad_id|>"
    assert tokenizer("<|eot_id|>", add_special_tokens=False)["input_ids"] == [ids[4]]
    assert tokenizer.chat_template
    gen = GenerationConfig.from_pretrained(tiny_dir)
    eot = tokenizer.convert_tokens_to_ids("<|eot_id|>")
    assert gen.eos_token_id == [tokenizer.eos_token_id, eot]


def test_deterministic_and_idempotent(tiny_dir, tmp_path):
    again = build_tiny(tmp_path / "again", preset="test", seed=0)
    first, second = load_file(tiny_dir / "model.safetensors"), load_file(again / "model.safetensors")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert (tiny_dir / "tokenizer.json").read_text() == (again / "tokenizer.json").read_text()
    mtime = (again / "model.safetensors").stat().st_mtime_ns
    assert build_tiny(again, preset="test", seed=0) == again
    assert (again / "model.safetensors").stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir()] == ["again"]  # no temporary directory left behind
    mask = os.umask(0)
    os.umask(mask)
    assert (again / "model.safetensors").stat().st_mode & 0o777 == 0o666 & ~mask  # not 0600: shareable


def test_unknown_preset_is_a_user_error(tmp_path):
    import pytest

    from posttrain.errors import UserError

    with pytest.raises(UserError):
        build_tiny(tmp_path / "x", preset="huge")


def test_ensure_tiny_builds_once_into_the_cache(tmp_path, monkeypatch):
    from posttrain.model.tiny import default_tiny_dir, ensure_tiny

    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path))
    assert default_tiny_dir("test") == tmp_path / "tiny-test-v1"
    path = ensure_tiny("test")
    assert path == tmp_path / "tiny-test-v1" and (path / "config.json").is_file()
    mtime = (path / "model.safetensors").stat().st_mtime_ns
    assert ensure_tiny("test") == path and (path / "model.safetensors").stat().st_mtime_ns == mtime
