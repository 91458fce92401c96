"""Throughput of `posttrain curate` decontaminate / dedup / filter, and MinHash dedup's measured
detection rate against the LSH S-curve 1 - (1 - s^r)^b at several Jaccard similarities.

    OMP_NUM_THREADS=1 .venv/bin/python bench/curation.py --rows 50000 --json curation.json

Data: seeded random-word chats (3,000-word vocabulary, 60-150 words a row); for the S-curve,
`--pairs` (original, copy) pairs per similarity bin, the copy made by substituting words until the
Jaccard similarity of 5-word shingles falls in the bin (measured, not assumed).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from posttrain.cli import main
from posttrain.curation.dedup import collision_probability

BINS = (0.5, 0.6, 0.7, 0.8, 0.9)


def vocabulary(rng: random.Random) -> list[str]:
    return sorted(
        {"".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9))) for _ in range(3000)}
    )


def chat(text: str) -> str:
    return json.dumps({"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}]})


def jaccard(a: list[str], b: list[str], n: int = 5) -> float:
    x = {tuple(a[i : i + n]) for i in range(len(a) - n + 1)}
    y = {tuple(b[i : i + n]) for i in range(len(b) - n + 1)}
    return len(x & y) / len(x | y)


def copy_near(rng, words, base: list[str], target: float) -> tuple[list[str], float]:
    """Substitute random words until the shingle Jaccard is within 0.025 of target (from above)."""
    copy = list(base)
    while (j := jaccard(base, copy)) > target + 0.025:
        copy[rng.randrange(len(copy))] = rng.choice(words)
    return copy, j


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    status = main(argv)
    if status != 0:
        raise SystemExit(f"{' '.join(argv)}: exit {status}")
    return time.perf_counter() - started


def throughput(folder: Path, rows: int, seed: int) -> dict:
    rng = random.Random(seed)
    words = vocabulary(rng)
    texts = [[rng.choice(words) for _ in range(rng.randint(60, 150))] for _ in range(rows)]
    (folder / "train.jsonl").write_text("".join(chat(" ".join(t)) + "\n" for t in texts))
    (folder / "eval.jsonl").write_text(
        "".join(json.dumps({"question": " ".join(texts[i][:30])}) + "\n" for i in range(0, rows, max(rows // 200, 1)))
    )
    train = str(folder / "train.jsonl")
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    # every language py3langid knows (quoted: YAML reads a bare no as false): timed, nothing removed
    every_language = json.dumps(list(LanguageIdentifier.from_model_file(MODEL_FILE).nb_classes))
    seconds = {
        "decontaminate": timed(
            [
                "curate",
                "decontaminate",
                "--set",
                f"input={train}",
                "--set",
                f"eval_files=[{folder / 'eval.jsonl'}]",
                "--out",
                str(folder / "d.jsonl"),
            ]
        ),
        "dedup": timed(["curate", "dedup", "--set", f"input={train}", "--out", str(folder / "u.jsonl")]),
        "filter (length + language)": timed(
            [
                "curate",
                "filter",
                "--set",
                f"input={train}",
                "--set",
                "max_chars=2000",
                "--set",
                f"languages={every_language}",
                "--set",
                "min_language_prob=0",
                "--out",
                str(folder / "f.jsonl"),
            ]
        ),
    }
    return {step: {"seconds": round(s, 2), "rows_per_s": round(rows / s)} for step, s in seconds.items()}


def s_curve(folder: Path, pairs: int, seed: int) -> dict:
    rng = random.Random(seed)
    words = vocabulary(rng)
    lines, groups = [], {}
    for target in BINS:
        for _ in range(pairs):
            base = [rng.choice(words) for _ in range(120)]
            copy, j = copy_near(rng, words, base, target)
            groups.setdefault(target, []).append((len(lines) + 1, len(lines) + 2, j))
            lines += [chat(" ".join(base)), chat(" ".join(copy))]
    (folder / "pairs.jsonl").write_text("".join(line + "\n" for line in lines))
    timed(
        [
            "curate",
            "dedup",
            "--set",
            f"input={folder / 'pairs.jsonl'}",
            "--set",
            "exact=false",
            "--out",
            str(folder / "p.jsonl"),
        ]
    )
    removed = {json.loads(line)["row"] for line in (folder / "p.removed.jsonl").read_text().splitlines()}
    result = {}
    for target, members in groups.items():
        found = sum(a in removed or b in removed for a, b, _ in members) / len(members)
        mean_j = sum(j for _, _, j in members) / len(members)
        result[str(target)] = {
            "mean_jaccard": round(mean_j, 3),
            "found": round(found, 3),
            "s_curve": round(collision_probability(mean_j, 14, 8), 3),
        }
    return result


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--pairs", type=int, default=200, help="pairs per similarity bin")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write every number to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = {
            "rows": args.rows,
            "throughput": throughput(Path(tmp), args.rows, args.seed),
            "minhash_s_curve": s_curve(Path(tmp), args.pairs, args.seed),
        }
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    run()
