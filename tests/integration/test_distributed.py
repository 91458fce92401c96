"""Two processes (gloo on CPU, launched through --num-processes / torchrun) with the same global
batch give the same loss curve as one process, with DDP and with FSDP2 sharding; checkpoints
saved by 2 processes resume in 1 and vice versa."""

import json

import pytest
import torch
from safetensors.torch import load_file

from tests.integration.conftest import run_cli

STEPS = 6


def _losses(out_dir):
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return [m["loss"] for m in rows if "loss" in m]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_dir, small_data):
    root = tmp_path_factory.mktemp("dist")
    recipe = root / "r.yaml"
    recipe.write_text(
        f"model: {tiny_dir}\ndata: [{small_data['sft']}]\n"
        f"train: {{micro_batch_size: 4, grad_accum_steps: 2, max_steps: {STEPS}, "
        "lr: 1.0e-3, save_every: 2, keep_last: 3, warmup_steps: 0}\n"
    )
    single = root / "single"
    run_cli("sft", recipe, "--output-dir", single)
    return root, recipe, single


# Two processes with micro-batches of 2 see the same 8 examples per step as one process with 4.
TWO = ["--num-processes", "2", "--set", "train.micro_batch_size=2"]


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_match_one(setup, strategy):
    root, recipe, single = setup
    out = root / strategy
    run_cli("sft", recipe, "--output-dir", out, *TWO, "--set", f"train.distributed={strategy}")
    assert _losses(out) == pytest.approx(_losses(single), abs=1e-4)
    a, b = load_file(single / "final" / "model.safetensors"), load_file(out / "final" / "model.safetensors")
    assert a.keys() == b.keys()  # full, unsharded weights
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize(
    "first, then", [(TWO, []), ([], TWO + ["--set", "train.distributed=fsdp"])], ids=["2-then-1", "1-then-2-fsdp"]
)
def test_checkpoints_resume_across_process_counts(setup, first, then):
    root, recipe, single = setup
    out = root / f"resume-{len(first)}"
    killed = run_cli("sft", recipe, "--output-dir", out, *first, env={"POSTTRAIN_KILL_AFTER_STEP": "3"}, check=False)
    assert killed.returncode != 0
    run_cli("sft", recipe, "--output-dir", out, "--resume", *then)
    assert _losses(out) == pytest.approx(_losses(single), abs=1e-4)


def test_kto_reference_point_is_one_estimate_over_both_processes(tmp_path, tiny_dir):
    """KTO's z0 is the mean mismatched log-ratio of the whole step, summed over both processes
    before the clamp: 2 processes x micro-batch 2 give 1 process x 4's losses. (Each process's own
    z0, tried by hand, gives a different loss from step 3 on, once z0 > 0: 0.548 vs 0.530.)"""
    pairs = tmp_path / "pairs.jsonl"
    rows = [
        {
            "prompt": f"Is {n} even or odd?",
            "chosen": ("even", "odd")[n % 2],
            "rejected": ("odd", "even")[n % 2] + " " * (n % 3) + "maybe",
        }
        for n in range(100, 140)
    ]
    pairs.write_text("".join(json.dumps(row) + "\n" for row in rows))
    recipe = tmp_path / "kto.yaml"
    recipe.write_text(
        f"model: {tiny_dir}\ndata: [{pairs}]\npreference: {{beta: 0.5}}\n"
        "train: {micro_batch_size: 4, grad_accum_steps: 2, max_steps: 5, lr: 1.0e-2, warmup_steps: 0}\n"
    )
    run_cli("kto", recipe, "--output-dir", tmp_path / "one")
    run_cli("kto", recipe, "--output-dir", tmp_path / "two", *TWO)
    z0 = [
        json.loads(line).get("kl_reference_point")
        for line in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()
    ]
    assert max(v for v in z0 if v is not None) > 1.0  # the clamp is not hiding the estimate
    assert _losses(tmp_path / "two") == pytest.approx(_losses(tmp_path / "one"), abs=1e-4)
