"""LoRA SFT on SmolLM2 with its ChatML template: a few steps lower the loss on a fixed reply, the
adapter names its base by an absolute path and loads in peft from another working directory, and
the trained reply ends with <|im_end|> (the end-of-turn token is trained)."""

import json

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from posttrain.config.recipe import load_recipe
from posttrain.data.chat import IGNORE_INDEX, tokenize_conversation
from posttrain.stages import sft
from tests.integration.conftest import write_jsonl

REPLY = "The password is BLUE-HORSE-42."


def _rows(n=8):
    return [
        {
            "messages": [
                {"role": "user", "content": f"Request {i}: what is the password?"},
                {"role": "assistant", "content": REPLY},
            ]
        }
        for i in range(n)
    ]


def test_chatml_labels_end_with_im_end(smollm2):
    _, tok = smollm2
    ids, labels = tokenize_conversation(tok, _rows(1)[0]["messages"])
    trained = [t for t, label in zip(ids, labels) if label != IGNORE_INDEX]
    assert tok.decode(trained) == REPLY + "<|im_end|>\n"


def test_lora_sft_lowers_loss_and_the_adapter_loads_elsewhere(smollm2_dir, tmp_path, monkeypatch):
    data = write_jsonl(tmp_path / "train.jsonl", _rows())
    recipe = load_recipe(
        None,
        [
            f"model={smollm2_dir}",
            f"data=[{data}]",
            "adapter.kind=lora",
            "adapter.r=8",
            "train.micro_batch_size=2",
            "train.max_steps=4",
            "train.lr=2e-3",
            "train.warmup_steps=0",
            "data.max_length=96",
        ],
    )
    sft.run(recipe, output_dir=str(tmp_path / "run"))
    losses = [
        m["loss"] for m in map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) if "loss" in m
    ]
    assert len(losses) == 4 and losses[-1] < 0.5 * losses[0], losses
    adapter = tmp_path / "run" / "final"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(smollm2_dir.resolve())
    monkeypatch.chdir(tmp_path)  # peft alone, from elsewhere: the base path is absolute
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(config["base_model_name_or_path"]), str(adapter)
    )
    assert any("lora_A" in name for name, _ in model.named_parameters())
    assert torch.isfinite(model(torch.tensor([[1, 2, 3]])).logits).all()
