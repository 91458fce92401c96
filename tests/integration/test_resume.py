"""A run killed (SIGKILL, no cleanup) after step 5 and resumed from its step-4 checkpoint logs the
same metrics as an uninterrupted run: weights, optimizer, scheduler, RNG and data position all
come back exactly."""

import json

import pytest

from tests.integration.conftest import run_cli

CASES = {  # name: (command, recipe body)
    "pretrain": ("pretrain", "data:\n  sources: [{{path: {pretrain}, kind: text}}]\n  max_length: 48\n"),
    "sft": ("sft", "data:\n  sources: [{sft}]\n"),
    "sft-lora": ("sft", "data:\n  sources: [{sft}]\nadapter: {{kind: lora, r: 4, dropout: 0.1}}\n"),
}


def _metrics(out_dir):
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return {m["step"]: (m["loss"], m["lr"], m["grad_norm"], m["tokens_seen"]) for m in rows if "loss" in m}


@pytest.mark.parametrize("case", sorted(CASES))
def test_killed_run_resumes_exactly(case, tmp_path, tiny_dir, small_data):
    stage, body = CASES[case]
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"model: {tiny_dir}\n"
        + body.format(**small_data)
        + "train: {micro_batch_size: 4, grad_accum_steps: 2, max_steps: 8, lr: 1.0e-3,"
        " save_every: 2, keep_last: 2, schedule: cosine, warmup_steps: 2}\n"
    )
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    run_cli(stage, recipe, "--output-dir", straight)
    proc = run_cli(stage, recipe, "--output-dir", killed, env={"POSTTRAIN_KILL_AFTER_STEP": "5"}, check=False)
    assert proc.returncode == -9  # really killed
    assert sorted(_metrics(killed)) == [1, 2, 3, 4, 5]
    assert sorted(p.name for p in (killed / "checkpoints").iterdir()) == ["step-00000002", "step-00000004"]
    run_cli(stage, recipe, "--output-dir", killed, "--resume")
    expected, got = _metrics(straight), _metrics(killed)
    assert sorted(got) == list(range(1, 9))
    for step in expected:
        assert got[step] == pytest.approx(expected[step], rel=1e-6, abs=1e-7), step
