"""`posttrain surgery ...` end to end: the commands, their one-line errors, and the LLaMA Pro
learning test (new blocks learn the arithmetic task, every original weight stays bit-identical)."""

import json

import pytest
import torch
from safetensors.torch import load_file

from posttrain.cli import main
from posttrain.config.recipe import load_recipe
from posttrain.stages import pretrain, sft


def _fails_with(capsys, argv, *fragments):
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("posttrain: error: ") and len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err


@pytest.fixture(scope="module")
def pretrained(tiny_dir, small_data, tmp_path_factory):
    """The tiny model after a short pre-training on arithmetic prose: LLaMA Pro's setting is a
    trained base whose frozen head and embeddings already mean something."""
    out = tmp_path_factory.mktemp("pre") / "run"
    recipe = load_recipe(
        None,
        [
            f"model={tiny_dir}",
            f"data=[{small_data['pretrain']}]",
            "train.lr=3e-3",
            "train.micro_batch_size=16",
            "train.max_steps=40",
            "train.warmup_steps=4",
        ],
    )
    pretrain.run(recipe, output_dir=str(out))
    return out / "final"


@pytest.fixture(scope="module")
def expanded(tiny_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("expanded") / "model"
    assert main(["surgery", "expand", str(tiny_dir), "--every", "1", "--out", str(out)]) == 0
    return out


def test_expand_writes_a_plain_llama_with_more_layers(expanded):
    config = json.loads((expanded / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["num_hidden_layers"] == 4
    assert config["posttrain_new_blocks"] == [1, 3]
    assert (expanded / "tokenizer.json").is_file()


def test_expand_bad_block_index(capsys, tiny_dir, tmp_path):
    _fails_with(
        capsys,
        ["surgery", "expand", tiny_dir, "--blocks", "0,2", "--out", tmp_path / "o"],
        "block index 2 out of range",
        "2 blocks",
    )


def test_llama_pro_on_an_unexpanded_model(capsys, tiny_dir, small_data, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model: {tiny_dir}\ndata: [{small_data['sft']}]\nadapter: {{kind: llama_pro}}\n")
    _fails_with(capsys, ["sft", recipe, "--output-dir", tmp_path / "o"], "llama_pro needs an expanded model")


@pytest.mark.slow
def test_new_blocks_learn_while_old_layers_stay_bit_identical(pretrained, small_data, tmp_path):
    """Before: the expanded (= pretrained) model's loss on the first SFT batch; after: held-out
    SFT loss. Measured: 2.82 -> 2.61 in 40 steps (full fine-tuning: 1.72 in 40 steps)."""
    expanded = tmp_path / "expanded"
    assert main(["surgery", "expand", str(pretrained), "--every", "1", "--out", str(expanded)]) == 0
    recipe = load_recipe(
        None,
        [
            f"model={expanded}",
            f"data=[{small_data['sft']}]",
            f"data.eval_sources=[{small_data['sft_eval']}]",
            "adapter.kind=llama_pro",
            "train.micro_batch_size=16",
            "train.max_steps=40",
            "train.lr=1e-2",
            "train.warmup_steps=4",
            "train.log_every=1",
        ],
    )
    sft.run(recipe, output_dir=str(tmp_path / "run"))
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    first = next(r["loss"] for r in rows if "loss" in r)
    final_eval = [r["eval_loss"] for r in rows if "eval_loss" in r][-1]
    print(f"llama_pro sft: first-batch loss {first:.3f}, final held-out loss {final_eval:.3f}")
    assert final_eval < first - 0.15, (first, final_eval)
    before = load_file(expanded / "model.safetensors")
    after = load_file(tmp_path / "run" / "final" / "model.safetensors")
    for name, tensor in before.items():
        if name.startswith(("model.layers.1.", "model.layers.3.")):  # the copies
            assert "norm" in name or not torch.equal(after[name], tensor), name
        else:
            assert torch.equal(after[name], tensor), name
