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
    recipe.write_text(f"model: {tiny_dir}\ndata: [{small_data['sft']}]\n"
                      f"train: {{micro_batch_size: 4, grad_accum_steps: 2, max_steps: {STEPS}, "
                      "lr: 1.0e-3, save_every: 2, keep_last: 3, warmup_steps: 0}\n")
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


@pytest.mark.parametrize("first, then", [(TWO, []), ([], TWO + ["--set", "train.distributed=fsdp"])],
                         ids=["2-then-1", "1-then-2-fsdp"])
def test_checkpoints_resume_across_process_counts(setup, first, then):
    root, recipe, single = setup
    out = root / f"resume-{len(first)}"
    killed = run_cli("sft", recipe, "--output-dir", out, *first,
                     env={"POSTTRAIN_KILL_AFTER_STEP": "3"}, check=False)
    assert killed.returncode != 0
    run_cli("sft", recipe, "--output-dir", out, "--resume", *then)
    assert _losses(out) == pytest.approx(_losses(single), abs=1e-4)
