"""`posttrain prune` end to end on the tiny test model: selection under the budget, uptraining
through `posttrain distill`, and the result accepted by `posttrain eval` and `posttrain sft`;
bad input as one line, exit 2."""

import json
import shutil

import pytest
import yaml
from transformers import AutoModelForCausalLM

from posttrain.cli import main
from posttrain.model.hetero_llama import PuzzleLlamaForCausalLM


def _recipe(path, tiny_dir, data, **extra):
    recipe = {
        "model": str(tiny_dir),
        "calibration": [{"path": str(data)}],
        "calibration_tokens": 2048,
        "sequence_length": 64,
        "batch_size": 8,
        "budget": 0.75,
        "bld_steps": 10,
        **extra,
    }
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.fixture(scope="module")
def pruned(tiny_dir, small_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("prune")
    uptrain = {
        "data": {"sources": [str(small_data["sft"])]},
        "train": {"micro_batch_size": 8, "max_steps": 2},
        "log": {"tensorboard": False},
    }
    recipe = _recipe(root / "r.yaml", tiny_dir, small_data["sft"], uptrain=uptrain, kv_budget=0.75)
    assert main(["prune", str(recipe), "--out", str(root / "out")]) == 0
    return root / "out"


def test_prune_selects_within_the_budgets_and_uptrains(pruned):
    report = json.loads((pruned / "prune_report.json").read_text())
    assert report["share"] <= 0.75 and report["params"] < report["parent_params"]
    assert sum(b["kv_heads"] for b in report["blocks"]) <= 0.75 * 2 * 2
    model = AutoModelForCausalLM.from_pretrained(pruned / "selected")
    parent = AutoModelForCausalLM.from_pretrained(report["parent"])
    assert model.generation_config.eos_token_id == parent.generation_config.eos_token_id  # its stop tokens
    assert isinstance(model, PuzzleLlamaForCausalLM)
    assert sum(p.numel() for p in model.parameters()) == report["params"]
    for layer in report["layers"]:  # the parent's own block scores 0 and every alternative trained
        assert layer["kl"]["attn=kv2 ffn=128"] == pytest.approx(0.0, abs=1e-7)
        assert layer["attention=1"]["error_bld"] < layer["attention=1"]["error_init"]
    assert isinstance(AutoModelForCausalLM.from_pretrained(pruned / "uptrain" / "final"), PuzzleLlamaForCausalLM)


def test_eval_and_sft_accept_the_pruned_model(pruned, small_data, tmp_path):
    final = pruned / "uptrain" / "final"
    assert (
        main(
            [
                "eval",
                str(final),
                "--tasks",
                "arithmetic",
                "--limit",
                "4",
                "--output-dir",
                str(tmp_path / "eval"),
                "--set",
                "max_new_tokens=4",
            ]
        )
        == 0
    )
    sft = tmp_path / "sft.yaml"
    sft.write_text(
        yaml.safe_dump(
            {
                "model": str(final),
                "data": [str(small_data["sft"])],
                "train": {"micro_batch_size": 4, "max_steps": 1},
                "log": {"tensorboard": False},
            }
        )
    )
    assert main(["sft", str(sft), "--output-dir", str(tmp_path / "sft")]) == 0
    assert isinstance(AutoModelForCausalLM.from_pretrained(tmp_path / "sft" / "final"), PuzzleLlamaForCausalLM)


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"budget": 0.3}, "is below the smallest choice"),
        ({"alternatives": {"attention": ["kv3"]}}, "unknown alternative 'kv3'"),
        ({"alternatives": {"ffn": ["ffn150"]}}, "unknown alternative 'ffn150'"),
    ],
    ids=["budget", "attention", "ffn"],
)
def test_bad_recipes_are_one_line(tiny_dir, small_data, tmp_path, capsys, extra, message):
    recipe = _recipe(tmp_path / "r.yaml", tiny_dir, small_data["sft"], **extra)
    assert main(["prune", str(recipe), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_a_model_that_is_not_a_llama_is_one_line(pruned, tiny_dir, small_data, tmp_path, capsys):
    recipe = _recipe(tmp_path / "r.yaml", pruned / "selected", small_data["sft"])
    assert main(["prune", str(recipe), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "model_type 'puzzle_llama'" in err and len(err.splitlines()) == 1, err
    mistral = shutil.copytree(tiny_dir, tmp_path / "mistral")
    config = json.loads((mistral / "config.json").read_text())
    (mistral / "config.json").write_text(
        json.dumps({**config, "model_type": "mistral", "architectures": ["MistralForCausalLM"]})
    )
    assert (
        main(["prune", str(_recipe(tmp_path / "m.yaml", mistral, small_data["sft"])), "--out", str(tmp_path / "out")])
        == 2
    )
    assert "model_type 'mistral'" in capsys.readouterr().err
