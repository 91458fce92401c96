"""adapter.kind llama_adapter_v2 through the SFT stage: it learns, saves only the adapter, and
posttrain's loaders (resume, evaluation) rebuild it on its base."""

import json

import torch

from posttrain.config.recipe import AdapterConfig, ModelConfig, load_recipe
from posttrain.model.inference import load_model_and_tokenizer
from posttrain.model.load import load_model
from posttrain.stages import sft


def test_sft_with_llama_adapter_v2(tiny_dir, small_data, tmp_path):
    run = tmp_path / "run"
    recipe = load_recipe(
        None,
        [
            f"model={tiny_dir}",
            f"data=[{small_data['sft']}]",
            f"data.eval_sources=[{small_data['sft_eval']}]",
            "adapter.kind=llama_adapter_v2",
            "adapter.prompt_length=8",
            "train.micro_batch_size=16",
            "train.max_steps=20",
            "train.lr=2e-2",
            "train.warmup_steps=2",
            "train.save_every=10",
        ],
    )
    sft.run(recipe, output_dir=str(run))
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    first, final_eval = rows[0]["loss"], [r["eval_loss"] for r in rows if "eval_loss" in r][-1]
    print(f"llama_adapter_v2 sft: first-batch loss {first:.3f}, final held-out loss {final_eval:.3f}")
    assert final_eval < first - 0.3, (first, final_eval)  # measured 6.48 -> 6.00 (random tiny base)
    settings = json.loads((run / "final" / "posttrain_adapter.json").read_text())
    assert settings["kind"] == "llama_adapter_v2" and settings["base_model_name_or_path"] == str(tiny_dir)
    assert not (run / "final" / "model.safetensors").exists()

    model, _ = load_model_and_tokenizer(str(run / "final"))  # what `posttrain eval` does
    ids = torch.tensor([[5, 17, 42, 8, 99]])
    resumed = load_model(
        ModelConfig(path=str(tiny_dir)),
        adapter=AdapterConfig(kind="llama_adapter_v2"),
        resume_from=run / "checkpoints" / "step-00000010",
    )
    assert any(p.requires_grad for p in resumed.parameters())  # a resumed run trains on
    base, _ = load_model_and_tokenizer(str(tiny_dir))
    with torch.no_grad():
        assert not torch.allclose(model(ids).logits, base(ids).logits)
        assert not torch.allclose(resumed(ids).logits, model(ids).logits)  # step 10 is not step 20
