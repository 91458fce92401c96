#!/usr/bin/env python
"""Completions per second of `posttrain sample`: the hf backend (batched, in-process) against the
openai backend talking to `posttrain serve` on loopback, at concurrency 1 and 8.

    OMP_NUM_THREADS=1 .venv/bin/python bench/sample_throughput.py [--prompts 32] [--n 2]
        [--max-new-tokens 32] [--batch-size 16] [--model tiny]

All runs sample the same prompts greedily (temperature 0, so every backend must return the same
tokens; the script checks it) from the same model (default: the quickstart's tiny model, built by
`posttrain make-tiny` if missing). Each run is a full `posttrain sample` job (chunks, manifest)
timed from the command's start to its end, model load excluded for hf (the server loads its model
once before the timed runs). The server batches concurrent requests (serve --batch-size), so
concurrency 8 lets it generate up to 8 completions per forward pass; concurrency 1 cannot.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prompts(path: Path, count: int) -> Path:
    rows = [{"prompt": f"What is {i} + {2 * i + 1}?"} for i in range(count)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _sample(args_list: list[str]) -> float:
    from posttrain.cli import main

    start = time.perf_counter()
    if main(args_list) != 0:
        raise SystemExit("a sample run failed")
    return time.perf_counter() - start


def _texts(path: Path) -> list:
    return [[c["text"] for c in json.loads(line)["completions"]] for line in path.read_text().splitlines()]


def _start_server(model: str, batch_size: int, extra: list[str], log: Path) -> tuple[subprocess.Popen, str]:
    import httpx

    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "posttrain",
            "serve",
            model,
            "--port",
            str(port),
            "--batch-size",
            str(batch_size),
            *extra,
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    url = f"http://127.0.0.1:{port}/v1"
    for _ in range(1500):
        try:
            if httpx.get(url + "/models", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("posttrain serve did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--n", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--model", default="tiny")
    parser.add_argument(
        "--batch-wait-ms",
        type=float,
        default=None,
        help="serve's collect window (left out: serve's default; older serves lack the flag)",
    )
    args = parser.parse_args()
    from posttrain.model.paths import resolve_model_path

    model = str(resolve_model_path(args.model))
    work = Path(tempfile.mkdtemp(prefix="sample-bench-"))
    prompts = _prompts(work / "prompts.jsonl", args.prompts)
    common = [
        "sample",
        model,
        "--prompts",
        str(prompts),
        "--n",
        str(args.n),
        "--temperature",
        "0",
        "--max-new-tokens",
        str(args.max_new_tokens),
        "--batch-size",
        str(args.batch_size),
        "--quiet",
        "--no-logprobs",
    ]
    _sample(common + ["--out", str(work / "warmup.jsonl")])  # loads torch/transformers once
    runs = [("hf (batched, in-process)", "-", _sample(common + ["--out", str(work / "hf.jsonl")]), "hf.jsonl")]
    wait = [] if args.batch_wait_ms is None else ["--batch-wait-ms", str(args.batch_wait_ms)]
    proc, url = _start_server(model, args.batch_size, wait, work / "serve.log")
    try:
        for concurrency in (1, 8):
            out = f"openai-c{concurrency}.jsonl"
            seconds = _sample(
                common
                + [
                    "--out",
                    str(work / out),
                    "--backend",
                    "openai",
                    "--base-url",
                    url,
                    "--concurrency",
                    str(concurrency),
                ]
            )
            runs.append(("openai -> posttrain serve", str(concurrency), seconds, out))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    total = args.prompts * args.n
    base = total / runs[0][2]
    print(
        f"{args.prompts} prompts x {args.n} completions, <= {args.max_new_tokens} new tokens, greedy, "
        f"model {model}, batch {args.batch_size}, load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'backend':28} {'concurrency':>11} {'seconds':>8} {'compl/s':>8} {'vs hf':>6} {'same tokens':>11}")
    for name, concurrency, seconds, out in runs:
        same = _texts(work / out) == _texts(work / "hf.jsonl")
        print(
            f"{name:28} {concurrency:>11} {seconds:8.2f} {total / seconds:8.2f} "
            f"{total / seconds / base:6.2f} {str(same):>11}"
        )
    print("server:", " ".join((work / "serve.log").read_text().split()[-14:]))  # its batching summary


if __name__ == "__main__":
    main()
