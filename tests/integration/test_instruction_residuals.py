"""Instruction residuals (Jindal et al. 2024) recover an SFT model's skill on a base that was
pre-trained further: theta_cpt + (theta_sft - theta_base), with no SFT run on theta_cpt.

Base: the default tiny model. SFT teaches held-out parity answers (tests/integration/
test_sft_learns.py's task); continued pre-training on number prose moves the base away from where
the SFT delta was learned and knows no instruction format (exact match 0)."""

import pytest

from posttrain.config import load_recipe
from posttrain.merging.recipe import MergeRecipe
from posttrain.merging.run import run_merge
from posttrain.data.synth.arithmetic import pretrain_rows
from posttrain.stages import pretrain, sft
from tests.integration.conftest import write_jsonl
from tests.integration.test_sft_learns import _accuracy, _parity_data


@pytest.mark.slow
def test_instruction_residual_recovers_sft_accuracy(tmp_path, tiny_default_dir):
    train, tests = _parity_data(tmp_path)
    text = write_jsonl(tmp_path / "prose.jsonl", pretrain_rows(200, seed=5))
    sft.run(load_recipe(None, [f"model={tiny_default_dir}", f"data=[{train}]", "train.micro_batch_size=16",
                               "train.max_steps=60", "train.lr=1e-3", "train.warmup_steps=5"]),
            output_dir=str(tmp_path / "sft"))
    pretrain.run(load_recipe(None, [f"model={tiny_default_dir}", f"data=[{text}]", "data.max_length=128",
                                    "train.micro_batch_size=8", "train.max_steps=25", "train.lr=1e-3",
                                    "train.warmup_steps=5"]),
                 output_dir=str(tmp_path / "cpt"))
    merged = run_merge(MergeRecipe(method="instruction_residual", models=[str(tmp_path / "sft" / "final")],
                                   base=str(tiny_default_dir), target=str(tmp_path / "cpt" / "final")),
                       str(tmp_path / "residual"))
    sft_acc = _accuracy(tmp_path / "sft" / "final", tests, tmp_path)
    cpt_acc = _accuracy(tmp_path / "cpt" / "final", tests, tmp_path)
    residual_acc = _accuracy(merged, tests, tmp_path)
    print(f"exact match: sft {sft_acc:.3f} cpt {cpt_acc:.3f} cpt+residual {residual_acc:.3f}")
    assert cpt_acc == 0.0
    assert residual_acc >= 0.8 * sft_acc, (sft_acc, cpt_acc, residual_acc)
