"""Methods that start from an SFT model, on the default tiny model and test_sft_learns.py's parity
task (held-out numbers): one SFT run (the module's fixture) serves both tests.

- Instruction residuals (Jindal et al. 2024): theta_cpt + (theta_sft - theta_base) recovers the SFT
  model's skill on a base that was pre-trained further (which knows no instruction format).
- Logit distillation: a student distilled from the SFT teacher against the same student trained
  by SFT for the same steps on the same data."""

import pytest

from posttrain.config.recipe import load_recipe
from posttrain.data.synth.arithmetic import pretrain_rows
from posttrain.merging.recipe import MergeRecipe
from posttrain.merging.run import run_merge
from posttrain.stages import distill, pretrain, sft
from tests.integration.conftest import write_jsonl
from tests.integration.test_sft_learns import _accuracy, _parity_data

SFT = ["train.micro_batch_size=16", "train.lr=1e-3", "train.warmup_steps=5", "log.tensorboard=false"]


@pytest.fixture(scope="module")
def parity_sft(tmp_path_factory, tiny_default_dir):
    root = tmp_path_factory.mktemp("parity-sft")
    train, tests = _parity_data(root)
    sft.run(
        load_recipe(None, [f"model={tiny_default_dir}", f"data=[{train}]", "train.max_steps=60", *SFT]),
        output_dir=str(root / "sft"),
    )
    return {"train": train, "tests": tests, "sft": root / "sft" / "final", "root": root}


@pytest.mark.slow
def test_instruction_residual_recovers_sft_accuracy(parity_sft, tiny_default_dir, tmp_path):
    text = write_jsonl(tmp_path / "prose.jsonl", pretrain_rows(200, seed=5))
    pretrain.run(
        load_recipe(
            None,
            [
                f"model={tiny_default_dir}",
                f"data=[{text}]",
                "data.max_length=128",
                "train.micro_batch_size=8",
                "train.max_steps=15",
                "train.lr=1e-3",
                "train.warmup_steps=5",
                "log.tensorboard=false",
            ],
        ),
        output_dir=str(tmp_path / "cpt"),
    )
    merged = run_merge(
        MergeRecipe(
            method="instruction_residual",
            models=[str(parity_sft["sft"])],
            base=str(tiny_default_dir),
            target=str(tmp_path / "cpt" / "final"),
        ),
        str(tmp_path / "residual"),
    )
    tests = parity_sft["tests"]
    sft_acc = _accuracy(parity_sft["sft"], tests, tmp_path)
    cpt_acc = _accuracy(tmp_path / "cpt" / "final", tests, tmp_path)
    residual_acc = _accuracy(merged, tests, tmp_path)
    print(f"exact match: sft {sft_acc:.3f} cpt {cpt_acc:.3f} cpt+residual {residual_acc:.3f}")
    assert cpt_acc == 0.0
    assert residual_acc >= 0.8 * sft_acc, (sft_acc, cpt_acc, residual_acc)


@pytest.mark.slow
def test_distilled_student_against_sft_student(parity_sft, tiny_default_dir, tmp_path):
    common = [f"model={tiny_default_dir}", f"data=[{parity_sft['train']}]", "train.max_steps=30", *SFT]
    sft.run(load_recipe(None, common), output_dir=str(tmp_path / "student-sft"))
    distill.run(
        load_recipe(None, [*common, f"distill.teacher={parity_sft['sft']}"]), output_dir=str(tmp_path / "student-kd")
    )
    tests = parity_sft["tests"]
    sft_acc = _accuracy(tmp_path / "student-sft" / "final", tests, tmp_path)
    kd_acc = _accuracy(tmp_path / "student-kd" / "final", tests, tmp_path)
    print(f"exact match after 30 steps: sft student {sft_acc:.3f} distilled student {kd_acc:.3f}")
    # Measured: teacher 82.5%, SFT student 47.5% (at chance), distilled student 60%. At 45 steps
    # SFT is ahead (77.5% vs 71.3%): README.md, Distillation, has the sweep.
    assert kd_acc > sft_acc, (sft_acc, kd_acc)
