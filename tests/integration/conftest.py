import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from posttrain.data.synth.arithmetic import eval_rows, pretrain_rows, sft_rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="session")
def small_data(tmp_path_factory):
    """Small arithmetic files: pre-training prose, SFT conversations, held-out test prompts."""
    d = tmp_path_factory.mktemp("data")
    return {
        "pretrain": write_jsonl(d / "pretrain.jsonl", pretrain_rows(120, seed=0)),
        "sft": write_jsonl(d / "sft.jsonl", sft_rows(96, seed=1)),
        "sft_eval": write_jsonl(d / "sft_eval.jsonl", sft_rows(16, seed=2)),
        "test": write_jsonl(d / "test.jsonl", eval_rows(16, seed=3)),
    }


def run_cli(
    *args: str, env: dict | None = None, check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess:
    """`python -m posttrain ...` in a subprocess, as a user runs it."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "posttrain", *map(str, args)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
        input=stdin,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stderr[-3000:]}")
    return proc
