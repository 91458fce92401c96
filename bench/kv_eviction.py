"""KV-cache eviction benchmark: full cache vs StreamingLLM vs H2O vs Locret vs random eviction.

Trains the test-size tiny Llama on the generated needle task (`posttrain pretrain` with
recipes/tiny/kv-needle.yaml, then `posttrain sft` with recipes/tiny/kv-needle-sft.yaml, loss on
the answer only), trains Locret's retaining heads on the frozen result, then evaluates
every method at the same budgets (accuracy and K/V bytes held). Every step is a posttrain command,
run in WORKDIR; a step whose output exists is skipped, so a rerun only redoes what is missing.

    OMP_NUM_THREADS=1 python bench/kv_eviction.py --workdir /tmp/kv-bench      # ~20 min on 1 CPU core
    python bench/kv_eviction.py --workdir /tmp/kv-bench --budgets 24,48 --limit 100
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "tiny" / "kv-needle.yaml"


def posttrain(*args: str, cwd: Path) -> None:
    command = [sys.executable, "-m", "posttrain", *args]
    print("$", " ".join(command[2:]), flush=True)
    subprocess.run(command, cwd=cwd, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--budgets", default="24,48")
    parser.add_argument("--recent", default="8")
    parser.add_argument("--chunk", default="16")
    parser.add_argument("--limit", default="200")
    parser.add_argument("--head-steps", default="1500")
    args = parser.parse_args()
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data" / "kv-needle"
    if not (data / "test.jsonl").exists():
        posttrain("kv", "make-data", "--out", str(data), cwd=work)
    if not (data / "tiny-test" / "config.json").exists():
        posttrain("make-tiny", "--preset", "test", "--out", str(data / "tiny-test"), cwd=work)
    if not (work / "runs" / "kv-needle" / "final" / "config.json").exists():
        posttrain("pretrain", str(RECIPE), cwd=work)
    model = work / "runs" / "kv-needle-sft" / "final"
    if not (model / "config.json").exists():
        posttrain("sft", str(RECIPE.with_name("kv-needle-sft.yaml")), cwd=work)
    heads = work / "heads.safetensors"
    if not heads.exists():
        posttrain(
            "kv",
            "train-heads",
            str(model),
            "--data",
            str(data / "heads.jsonl"),
            "--out",
            str(heads),
            "--steps",
            args.head_steps,
            cwd=work,
        )
    posttrain(
        "kv",
        "eval",
        str(model),
        "--data",
        str(data / "test.jsonl"),
        "--budget",
        args.budgets,
        "--recent",
        args.recent,
        "--chunk",
        args.chunk,
        "--heads",
        str(heads),
        "--limit",
        args.limit,
        "--out",
        str(work / "results.json"),
        cwd=work,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
