"""adapter.kind control_llm through the SFT stage: the divergence loss is logged as part of the
objective, only the trainable copies move, and the saved model loads through transformers."""

import json

import torch
from safetensors.torch import load_file

from posttrain.config.recipe import AdapterConfig, ModelConfig, load_recipe
from posttrain.model.inference import load_model_and_tokenizer
from posttrain.model.load import load_model
from posttrain.model.surgery.control_llm import ControlLlamaForCausalLM
from posttrain.stages import sft


def test_sft_with_control_llm(tiny_dir, small_data, tmp_path):
    run = tmp_path / "run"
    recipe = load_recipe(
        None,
        [
            f"model={tiny_dir}",
            f"data=[{small_data['sft']}]",
            f"data.eval_sources=[{small_data['sft_eval']}]",
            "adapter.kind=control_llm",
            "adapter.blocks=[1]",
            "adapter.learn_mix=true",
            "train.micro_batch_size=16",
            "train.max_steps=15",
            "train.lr=1e-2",
            "train.warmup_steps=2",
        ],
    )
    sft.run(recipe, output_dir=str(run))
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if "divergence_loss" in r]
    assert len(train) == 15 and train[0]["divergence_loss"] < 1e-6 < train[-1]["divergence_loss"]
    final_eval = [r["eval_loss"] for r in rows if "eval_loss" in r][-1]
    print(
        f"control_llm sft: first-batch loss {rows[0]['loss']:.3f}, final held-out loss {final_eval:.3f}, "
        f"divergence {train[-1]['divergence_loss']:.4f}"
    )
    assert final_eval < rows[0]["loss"] - 0.3

    config = json.loads((run / "final" / "config.json").read_text())
    assert config["model_type"] == "control_llama" and config["control_blocks"] == [1]
    base = load_file(tiny_dir / "model.safetensors")
    after = load_file(run / "final" / "model.safetensors")
    for name, tensor in base.items():  # every original weight, the frozen branch included, is intact
        name_after = name.replace("model.layers.1.", "model.layers.1.frozen.")
        assert torch.equal(after[name_after], tensor), name
    assert not torch.equal(
        after["model.layers.1.trained.mlp.up_proj.weight"], base["model.layers.1.mlp.up_proj.weight"]
    )
    assert float(after["model.layers.1.mix_logit"]) != 0.0  # learned

    model, _ = load_model_and_tokenizer(str(run / "final"))  # what `posttrain eval` does
    assert isinstance(model, ControlLlamaForCausalLM)
    again = load_model(ModelConfig(path=str(run / "final")), adapter=AdapterConfig(kind="control_llm"))
    assert {n for n, p in again.named_parameters() if p.requires_grad} == {
        n for n, _ in again.named_parameters() if n.startswith("model.layers.1.trained.") or n.endswith("mix_logit")
    }
