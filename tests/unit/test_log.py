"""Metrics sinks: JSONL record, TensorBoard mirror, resume truncation, disabled no-ops, wandb guard."""

import builtins
import json

import numpy as np
import pytest
import torch

from posttrain.errors import UserError
from posttrain.log import MetricsLogger, progress_bar, read_metrics


def test_log_appends_one_json_line_per_step_and_writes_tensorboard(tmp_path):
    with MetricsLogger(tmp_path) as logger:
        logger.log({"loss": torch.tensor(2.5), "lr": 1e-3}, step=1)
        logger.log({"loss": np.float32(1.5), "note": "eval"}, step=2)
        assert read_metrics(tmp_path / "metrics.jsonl")[0] == {"step": 1, "loss": 2.5, "lr": 1e-3}  # flushed already
    rows = read_metrics(tmp_path)
    assert rows == [{"step": 1, "loss": 2.5, "lr": 1e-3}, {"step": 2, "loss": 1.5, "note": "eval"}]
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_truncate_after_drops_later_steps_and_keeps_appending(tmp_path):
    logger = MetricsLogger(tmp_path, tensorboard=True)
    for step in range(1, 6):
        logger.log({"loss": float(step)}, step=step)
    logger.truncate_after(3)
    logger.log({"loss": 40.0}, step=4)
    logger.close()
    assert [row["step"] for row in read_metrics(tmp_path)] == [1, 2, 3, 4]
    assert read_metrics(tmp_path)[-1]["loss"] == 40.0
    assert not list(tmp_path.glob("*.tmp"))


def test_disabled_logger_writes_nothing(tmp_path):
    logger = MetricsLogger(tmp_path / "run", enabled=False)
    logger.log({"loss": 1.0}, step=1)
    logger.truncate_after(0)
    logger.close()
    assert not (tmp_path / "run").exists()


def test_wandb_project_without_wandb_installed_is_a_user_error(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def import_without_wandb(name, *args, **kwargs):
        if name == "wandb":
            raise ImportError("no wandb")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", import_without_wandb)
    with pytest.raises(UserError, match="wandb_project is set but wandb is not installed: pip install wandb"):
        MetricsLogger(tmp_path, wandb_project="demo")


def test_read_metrics_skips_a_torn_last_line_but_not_a_bad_middle_one(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps({"step": 1}) + "\n" + '{"step": 2, "lo')
    assert read_metrics(path) == [{"step": 1}]
    path.write_text("garbage\n" + json.dumps({"step": 1}) + "\n")
    with pytest.raises(UserError, match="line 1"):
        read_metrics(path)


def test_progress_bar_starts_at_resume_step_and_can_be_silenced():
    bar = progress_bar(total=10, initial=4, enabled=False)
    assert bar.n == 4 and bar.total == 10 and bar.disable
    bar.close()


def test_write_error_is_one_line_naming_the_metrics_file(tmp_path):
    logger = MetricsLogger(tmp_path, tensorboard=False)
    logger.log({"loss": 1.0}, step=1)

    class FullDisk:
        def write(self, text):
            raise OSError(28, "No space left on device")

        def close(self):
            raise OSError(28, "No space left on device")

    logger._jsonl = FullDisk()
    with pytest.raises(UserError, match=r"metrics.jsonl: cannot write metrics: No space left on device"):
        logger.log({"loss": 2.0}, step=2)
    logger.close()  # a failed file closes quietly (the error was reported once)
    assert [row["step"] for row in read_metrics(tmp_path)] == [1]
