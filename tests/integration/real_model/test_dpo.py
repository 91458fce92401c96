"""LoRA DPO on SmolLM2 with its ChatML template: a few steps on fixed pairs lower the DPO loss
(from log 2 at the start, where the policy equals the reference), and the adapter loads in peft."""

import json
import math

from peft import PeftModel
from transformers import AutoModelForCausalLM

from posttrain.config.recipe import load_recipe
from posttrain.stages import dpo
from tests.integration.conftest import write_jsonl


def _pairs(n=4):
    return [
        {
            "prompt": f"Question {i}: what colour is a clear daytime sky?",
            "chosen": "The sky is blue.",
            "rejected": "The sky is green with purple stripes.",
        }
        for i in range(n)
    ]


def test_lora_dpo_lowers_the_loss(smollm2_dir, tmp_path):
    data = write_jsonl(tmp_path / "pairs.jsonl", _pairs())
    recipe = load_recipe(
        None,
        [
            f"model={smollm2_dir}",
            f"data=[{data}]",
            "adapter.kind=lora",
            "adapter.r=8",
            "train.micro_batch_size=2",
            "train.max_steps=3",
            "train.lr=2e-3",
            "train.warmup_steps=0",
            "preference.beta=0.5",
            "data.max_length=96",
        ],
    )
    dpo.run(recipe, output_dir=str(tmp_path / "run"))
    losses = [
        m["loss"] for m in map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) if "loss" in m
    ]
    assert len(losses) == 3 and abs(losses[0] - math.log(2)) < 1e-3, losses  # policy == reference at step 1
    assert losses[-1] < 0.9 * losses[0], losses
    adapter = tmp_path / "run" / "final"
    base = json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(adapter))
