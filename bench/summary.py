#!/usr/bin/env python
"""One table over several bench runs' --json files: per stage and vocabulary, posttrain's and the
TRL peer's s/step, the ratio of steps (or tokens, for pre-training) per second, peak-memory ratio,
and both MFUs.

    python bench/summary.py sft.json pretrain.json dpo.json kto.json reward.json grpo.json

The stage is the json file's name without ".json"; the peer is the framework named "trl".
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def rows(path: Path) -> list[str]:
    data = json.loads(path.read_text())
    by = {(r["framework"], r["vocab"]): r for r in data["results"]}
    out = []
    for vocab in sorted({v for _, v in by}):
        p, t = by.get(("posttrain", vocab)), by.get(("trl", vocab))
        if not (p and t):
            continue
        per_s = "tokens_per_s" if path.stem == "pretrain" else "steps_per_s"
        mfu = [f"{r['mfu']:.1%}" if r.get("mfu") else "—" for r in (p, t)]
        out.append(
            f"| {path.stem} | {vocab:,} | {p['s_per_step']:.3f} | {t['s_per_step']:.3f} | "
            f"{p[per_s] / t[per_s]:.2f} | {p['peak_kib'] / t['peak_kib']:.2f} | {mfu[0]} | {mfu[1]} |"
        )
    return out


def main(paths: list[str]) -> int:
    print(
        "| stage | vocab | posttrain s/step | TRL s/step | posttrain/TRL per second | peak memory "
        "posttrain/TRL | posttrain MFU | TRL MFU |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for path in paths:
        print("\n".join(rows(Path(path))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
