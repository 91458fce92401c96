"""Faults a run must survive, each ending in one line and a stated exit status, earlier outputs
untouched: divergence, a second run on the same directory, signals, resume rules, write errors.

Runs that need their own process (a lock held by another PID, a signal from outside) go through
`python -m posttrain`; the rest call the CLI's main() in this process, as test_cli_errors does."""

import errno
import hashlib
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from safetensors.torch import load_file

from posttrain.cli import main
from tests.integration.conftest import run_cli
from tests.integration.test_resume import _metrics

STEPS = 6


@pytest.fixture(scope="module")
def recipe(tmp_path_factory, tiny_dir, small_data):
    path = tmp_path_factory.mktemp("faults") / "r.yaml"
    path.write_text(
        f"model: {tiny_dir}\ndata: [{small_data['sft']}]\nlog: {{tensorboard: false}}\n"
        f"train: {{micro_batch_size: 4, max_steps: {STEPS}, lr: 1.0e-3, schedule: cosine,"
        " warmup_steps: 2}\n"
    )
    return path


@pytest.fixture(scope="module")
def straight(recipe, tmp_path_factory):
    """An uninterrupted run (no checkpoints: save_every is unset)."""
    out = tmp_path_factory.mktemp("straight") / "run"
    run_cli("sft", recipe, "--output-dir", out)
    return out


def _error_line(err: str) -> str:
    """The stderr of a failed run: no traceback, and its last line is the one error line."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert sum(line.startswith("posttrain: ") for line in lines) == 1, err
    assert lines[-1].startswith("posttrain: "), err
    return lines[-1]


def _fails(capsys, *argv) -> str:
    assert main([str(a) for a in argv]) == 2
    return _error_line(capsys.readouterr().err)


def _digest(directory) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def _all_finite(model_dir) -> bool:
    weights = load_file(str(model_dir / "model.safetensors"))
    return all(bool(t.isfinite().all()) for t in weights.values())


# ---- divergence ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lr, message",
    [
        ("1e20", r"step 2: the loss is nan"),  # step 1 moves every weight by ~1e20; step 2 overflows
        # A few steps of ~1e3 per weight overflow RMSNorm's mean of squares: it outputs zeros, the
        # logits are uniform and the gradient is exactly 0 while the loss stays ln(vocab).
        ("1e3", r"step [2-6]: the gradient norm is exactly 0 while the loss is"),
    ],
)
def test_divergence_stops_naming_the_step(lr, message, capsys, recipe, tmp_path):
    out = tmp_path / "run"
    line = _fails(capsys, "sft", recipe, "--output-dir", out, "--set", f"train.lr={lr}", "--set", "train.save_every=1")
    assert line.startswith("posttrain: error: ") and "training diverged" in line
    assert re.search(message, line), line
    assert not (out / "final").exists()
    saved = sorted((out / "checkpoints").iterdir())
    assert saved and all(_all_finite(ckpt) for ckpt in saved)  # the step that diverged is not saved


def _nan_loss_at_step(monkeypatch, bad_step: int) -> None:
    """Make the objective's loss NaN on one step (one micro-batch per step, no eval batches)."""
    from posttrain.objectives.sft import NextTokenObjective

    original, calls = NextTokenObjective.loss, []

    def loss(self, policy, mb):
        calls.append(1)
        total, stats = original(self, policy, mb)
        return (total + math.nan if len(calls) == bad_step else total), stats

    monkeypatch.setattr(NextTokenObjective, "loss", loss)


def test_skip_switch_steps_over_one_bad_batch(capsys, caplog, monkeypatch, recipe, tmp_path):
    _nan_loss_at_step(monkeypatch, 2)
    out = tmp_path / "run"
    assert (
        main(
            [
                "sft",
                str(recipe),
                "--output-dir",
                str(out),
                "--set",
                "train.on_nonfinite=skip",
                "--set",
                "train.max_steps=3",
            ]
        )
        == 0
    )
    assert "step 2: the loss is nan: update skipped" in caplog.text
    rows = _metrics(out)
    assert math.isnan(rows[2][0]) and math.isfinite(rows[3][0])
    assert _all_finite(out / "final")


# ---- lock, signals, exact resume after SIGTERM ---------------------------------------------------


def _start(recipe, out, *extra, env=None):
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "posttrain", "sft", str(recipe), "--output-dir", str(out), *extra],
        env=full_env,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_step(out, step: int, proc) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if (out / "metrics.jsonl").exists() and step in _metrics(out):
            return
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.1)
    raise AssertionError(f"step {step} never logged")


def test_sigterm_checkpoints_and_lock_refuses_a_second_run(capsys, recipe, straight, tmp_path):
    out = tmp_path / "run"
    first = _start(recipe, out, env={"POSTTRAIN_WAIT_AFTER_STEP": "2"})
    try:
        _wait_for_step(out, 2, first)
        config = (out / "config.yaml").read_bytes()
        for extra in ([], ["--resume"]):  # a second run, or a resume, while the first trains
            line = _fails(capsys, "sft", recipe, "--output-dir", out, *extra)
            assert f"{out} is in use by another run (PID {first.pid})" in line
        assert (out / "config.yaml").read_bytes() == config
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=300)
    finally:
        first.kill()
    assert first.returncode == 128 + signal.SIGTERM
    line = _error_line(err)
    assert line == (
        f"posttrain: SIGTERM: stopped after step 2 of {STEPS}; checkpoint saved in "
        f"{out / 'checkpoints' / 'step-00000002'}; continue with --resume"
    )
    run_cli("sft", recipe, "--output-dir", out, "--resume")  # the lock died with the process
    expected, got = _metrics(straight), _metrics(out)
    assert sorted(got) == list(range(1, STEPS + 1))
    for step in expected:
        assert got[step] == pytest.approx(expected[step], rel=1e-6, abs=1e-7), step


def test_sigint_checkpoints_and_exits_130(capsys, recipe, tmp_path, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setenv("POSTTRAIN_WAIT_AFTER_STEP", "1")

    def interrupt_when_step_1_is_logged():
        while not ((out / "metrics.jsonl").exists() and 1 in _metrics(out)):
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_when_step_1_is_logged, daemon=True).start()
    assert main(["sft", str(recipe), "--output-dir", str(out)]) == 128 + signal.SIGINT
    assert "posttrain: SIGINT: stopped after step 1" in _error_line(capsys.readouterr().err)
    assert (out / "checkpoints" / "step-00000001" / "optim.pt").is_file()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored


# ---- resume rules --------------------------------------------------------------------------------


def test_resume_refuses_a_finished_run_without_checkpoint(capsys, recipe, straight):
    before = _digest(straight)
    line = _fails(capsys, "sft", recipe, "--output-dir", straight, "--resume")
    assert "holds a finished run (final/) and no checkpoint" in line
    assert _digest(straight) == before  # final/ and config.yaml untouched


def test_resume_refuses_exactness_breaking_changes_and_applies_lr(capsys, caplog, recipe, tmp_path):
    out = tmp_path / "run"
    assert (
        main(
            [
                "sft",
                str(recipe),
                "--output-dir",
                str(out),
                "--set",
                "train.max_steps=3",
                "--set",
                "train.save_every=2",
                "--set",
                "train.schedule=constant",
            ]
        )
        == 0
    )
    before = _digest(out)
    line = _fails(
        capsys, "sft", recipe, "--output-dir", out, "--resume", "--set", "seed=1", "--set", "train.micro_batch_size=2"
    )
    assert "seed: 0 -> 1; global batch (micro_batch_size x grad_accum_steps x processes): 4x1x1=4 -> 2x1x1=2" in line
    assert _digest(out) == before  # config.yaml included
    assert (
        main(
            [
                "sft",
                str(recipe),
                "--output-dir",
                str(out),
                "--resume",
                "--set",
                "train.max_steps=4",
                "--set",
                "train.save_every=2",
                "--set",
                "train.schedule=constant",
                "--set",
                "train.lr=5e-4",
            ]
        )
        == 0
    )
    assert "applying the new recipe's train.lr: 0.001 -> 0.0005; train.max_steps: 3 -> 4" in caplog.text
    rows = _metrics(out)
    assert rows[2][1] == 1e-3 and rows[3][1] == rows[4][1] == 5e-4  # the new lr is used
    assert "lr: 0.0005" in (out / "config.yaml").read_text()  # and is what config.yaml records


# ---- write errors and permissions ----------------------------------------------------------------


def test_disk_full_while_checkpointing_is_one_line_and_keeps_the_last_checkpoint(capsys, monkeypatch, recipe, tmp_path):
    from posttrain.checkpoint import io

    original = io._torch_save

    def save(obj, path):
        if "step-00000004" in str(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        original(obj, path)

    monkeypatch.setattr(io, "_torch_save", save)
    out = tmp_path / "run"
    line = _fails(capsys, "sft", recipe, "--output-dir", out, "--set", "train.save_every=2")
    assert "step-00000004/optim.pt: cannot write" in line and "No space left on device" in line
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000002"]
    assert (out / "checkpoints" / "step-00000002" / "optim.pt").is_file()
    assert not (out / "final").exists()


def test_outputs_are_readable_per_the_umask(straight):
    """transformers writes model.safetensors 0600; a shared model must be readable (0644 under 022)."""
    mask = os.umask(0)
    os.umask(mask)
    for path in (straight / "final").iterdir():
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask, path
    assert (straight / "config.yaml").stat().st_mode & 0o777 == 0o666 & ~mask
