"""`posttrain sample` as a user runs it: killed with SIGKILL mid-way and rerun, it ends with every
prompt's N completions exactly once."""

import json
import os
import signal
import subprocess
import sys
import time

from posttrain.cli import main
from tests.integration.conftest import write_jsonl

ROWS, N = 10, 3


def _prompts(tmp_path):
    rows = [{"prompt": f"What is {i} + {i}?", "answer": str(2 * i), "source": "s" + str(i % 2)} for i in range(ROWS)]
    rows[3] = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}
    return write_jsonl(tmp_path / "prompts.jsonl", rows)


def _sample_args(tiny_dir, prompts, out):
    return [
        "sample",
        str(tiny_dir),
        "--prompts",
        str(prompts),
        "--out",
        str(out),
        "--n",
        str(N),
        "--max-new-tokens",
        "12",
        "--batch-size",
        "1",
        "--seed",
        "7",
        "--quiet",
    ]


def _wait_for_chunks(parts, count, proc, limit_s=300):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and proc.poll() is None:
        if parts.is_dir() and len(list(parts.glob("chunk-*.jsonl"))) >= count:
            return
        time.sleep(0.05)
    raise AssertionError("the run finished or stalled before it could be killed mid-way")


def test_kill_9_mid_run_then_rerun_gives_every_row_once(tiny_dir, tmp_path):
    prompts, out = _prompts(tmp_path), tmp_path / "out.jsonl"
    parts = tmp_path / "out.jsonl.parts"
    proc = subprocess.Popen(
        [sys.executable, "-m", "posttrain", *_sample_args(tiny_dir, prompts, out)],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for_chunks(parts, 3, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = {p.name: p.read_text() for p in parts.glob("chunk-*.jsonl")}
    assert 3 <= len(kept) < ROWS and not out.exists()

    assert main(_sample_args(tiny_dir, prompts, out)) == 0  # in-process: one interpreter start less
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["row"] for r in rows] == list(range(1, ROWS + 1))  # none missing, none twice, in order
    assert all(len(r["completions"]) == N for r in rows)
    for name, text in kept.items():  # finished chunks were kept as they were, not redone
        assert json.loads(text)["row"] == int(name[6:12]) + 1 and json.loads(text) in rows
    first = rows[0]
    assert first["answer"] == "0" and first["source"] == "s0" and first["prompt"] == "What is 0 + 0?"
    assert rows[3]["prompt"][-1] == {"role": "user", "content": "Hi"}
    completion = first["completions"][0]
    assert completion["finish_reason"] in ("stop", "length") and 0 < completion["num_tokens"] <= 12
    assert completion["logprob"] < 0
    assert first["sampling"]["temperature"] == 1.0 and first["backend"] == "hf"
    manifest = json.loads((tmp_path / "out.manifest.json").read_text())
    assert manifest["counts"] == {
        "items": ROWS,
        "rows_out": ROWS,
        "failed": 0,
        "invalid_rows_skipped": 0,
        "completions_without_logprob": 0,
    }
    assert len(manifest["inputs"][0]["sha256"]) == 64 and not parts.exists()


def test_invalid_prompt_row_is_one_line_or_skipped_and_counted(tiny_dir, tmp_path, capsys):
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "ok"}, {"prompt": 3}, {"prompt": "fine"}])
    args = [
        "sample",
        str(tiny_dir),
        "--prompts",
        str(prompts),
        "--out",
        str(tmp_path / "o.jsonl"),
        "--max-new-tokens",
        "2",
        "--quiet",
    ]
    assert main(args) == 2
    assert "p.jsonl: row 2: field 'prompt'" in capsys.readouterr().err
    assert main(args + ["--on-error", "skip"]) == 0
    manifest = json.loads((tmp_path / "o.manifest.json").read_text())
    assert manifest["counts"]["invalid_rows_skipped"] == 1 and manifest["counts"]["rows_out"] == 2
    assert main(args + ["--shard", "2/2"]) == 2 and "--shard '2/2'" in capsys.readouterr().err
    assert main(args + ["--set", "temprature=1"]) == 2 and "KEY one of" in capsys.readouterr().err


def test_shards_joined_by_data_concat_equal_the_whole_job(tiny_dir, tmp_path):
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": f"q{i}"} for i in range(5)])
    base = [
        "sample",
        str(tiny_dir),
        "--prompts",
        str(prompts),
        "--max-new-tokens",
        "3",
        "--quiet",
        "--temperature",
        "0",
        "--batch-size",
        "2",
    ]
    assert main(base + ["--out", str(tmp_path / "whole.jsonl")]) == 0
    for i in range(2):
        assert main(base + ["--out", str(tmp_path / f"s{i}.jsonl"), "--shard", f"{i}/2"]) == 0
    assert (
        main(
            [
                "data",
                "concat",
                str(tmp_path / "s1.jsonl"),
                str(tmp_path / "s0.jsonl"),
                "--out",
                str(tmp_path / "joined.jsonl"),
            ]
        )
        == 0
    )

    def texts(name):
        return [(r["row"], r["completions"]) for r in map(json.loads, (tmp_path / name).read_text().splitlines())]

    assert texts("joined.jsonl") == texts("whole.jsonl") and len(texts("whole.jsonl")) == 5
