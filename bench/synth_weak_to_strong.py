"""Does final-answer consistency select correct weak labels? A small check on tiny models.

Two tiny models (different initialisations: seeds 0 and 1) are each fine-tuned to memorise the
answers of the first 8 arithmetic test problems. On 16 problems (those 8, plus 8 unseen) the first
is the weak model (greedy) and the second the strong model (4 samples at temperature 1), through
`posttrain synth weak-to-strong`. Printed: the weak model's accuracy on all 16, and the number and
accuracy of the questions the consistency filter keeps (the SFT rows it would write).

    OMP_NUM_THREADS=1 .venv/bin/python bench/synth_weak_to_strong.py [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

SEEN, UNSEEN = 8, 8


def memorised(root: Path, seed: int, docs: list[dict]) -> Path:
    from posttrain.config.recipe import load_recipe
    from posttrain.model.tiny import build_tiny
    from posttrain.stages import sft

    base = build_tiny(root / f"base-{seed}", preset="test", seed=seed)
    data = root / "memorise.jsonl"
    rows = [
        {
            "messages": [
                {"role": "user", "content": d["prompt"]},
                {"role": "assistant", "content": f"The answer is {d['reference']}."},
            ]
        }
        for d in docs[:SEEN]
    ]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    recipe = load_recipe(
        None,
        [
            f"model={base}",
            f"data=[{data}]",
            "train.micro_batch_size=8",
            "train.max_steps=100",
            "train.lr=6e-3",
            "train.warmup_steps=5",
            "log.tensorboard=false",
            f"seed={seed}",
        ],
    )
    sft.run(recipe, output_dir=str(root / f"run-{seed}"))
    return root / f"run-{seed}" / "final"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", help="keep the models and outputs here (default: a temp dir)")
    args = parser.parse_args()
    from posttrain.cli import main as posttrain
    from posttrain.eval.tasks.builtin import resolve_task
    from posttrain.eval.tasks.documents import load_documents
    from posttrain.rewards.math import answers_match

    root = Path(args.workdir or tempfile.mkdtemp(prefix="w2s-"))
    root.mkdir(parents=True, exist_ok=True)
    docs = load_documents(resolve_task("arithmetic"), limit=SEEN + UNSEEN)[0]
    started = time.monotonic()
    weak, strong = memorised(root, 0, docs), memorised(root, 1, docs)
    questions = root / "questions.jsonl"
    questions.write_text("".join(json.dumps({"prompt": d["prompt"], "reference": d["reference"]}) + "\n" for d in docs))
    out = root / "w2s"
    sets = [
        f"questions={questions}",
        f"weak.model={weak}",
        "weak.backend=hf",
        f"strong.model={strong}",
        "strong.backend=hf",
        "strong.temperature=1.0",
        "n_strong=4",
        "weak.max_new_tokens=16",
        "strong.max_new_tokens=16",
    ]
    code = posttrain(["synth", "weak-to-strong", "--out", str(out), *sum((["--set", s] for s in sets), [])])
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    right = [answers_match(r["weak"]["answer"], str(r["reference"])) for r in rows]
    kept = {r["row"] for r in map(json.loads, (out / "sft.jsonl").read_text().splitlines())} if code == 0 else set()
    kept_right = sum(ok for r, ok in zip(rows, right) if r["row"] in kept)
    print(
        json.dumps(
            {
                "weak_accuracy": f"{sum(right)}/{len(rows)}",
                "weak_accuracy_seen": f"{sum(right[:SEEN])}/{SEEN}",
                "weak_accuracy_unseen": f"{sum(right[SEEN:])}/{UNSEEN}",
                "kept": len(kept),
                "kept_correct": kept_right,
                "pairs": json.loads((out / "manifest.json").read_text())["counts"]["pairs"],
                "wall_s": round(time.monotonic() - started, 1),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
