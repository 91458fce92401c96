"""The converted SmolLM2 directory: what transformers gets from it equals what it gets from the GGUF
file itself, and it carries what chat stages need (ChatML template, stop tokens)."""

import json

import torch
from transformers import AutoModelForCausalLM

from posttrain.model.smollm2 import GGUF_NAME, bundled_gguf


def test_directory_has_chatml_stop_tokens_and_the_model_shape(smollm2_dir, smollm2):
    model, tok = smollm2
    c = model.config
    assert (c.num_hidden_layers, c.hidden_size, c.num_key_value_heads, c.vocab_size) == (30, 576, 3, 49152)
    assert c.tie_word_embeddings and model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert not hasattr(c, "quantization_config")
    generation = json.loads((smollm2_dir / "generation_config.json").read_text())
    assert generation["eos_token_id"] == [
        tok.convert_tokens_to_ids("<|im_end|>"),
        tok.convert_tokens_to_ids("<|endoftext|>"),
    ]
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    source = json.loads((smollm2_dir / "gguf_source.json").read_text())
    assert source["gguf_file"] == GGUF_NAME and "Q4_1" in source["tensor_types"]


def test_logits_equal_the_gguf_loaded_model(smollm2):
    model, tok = smollm2
    path = bundled_gguf()
    from_gguf = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    ids = tok("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected, got = from_gguf(ids).logits, model(ids).logits
    assert torch.equal(got, expected)


def test_the_name_resolves_to_the_converted_directory(smollm2_dir, monkeypatch):
    from posttrain.model import smollm2
    from posttrain.model.paths import resolve_model_path

    monkeypatch.setattr(smollm2, "default_smollm2_dir", lambda: smollm2_dir)
    assert resolve_model_path("smollm2-135m-instruct") == str(smollm2_dir)
