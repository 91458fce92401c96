"""Does CHES filtering keep DPO from displacing the preferred answer? (Razin et al. 2024)

    python bench/ches_displacement.py --model runs/tiny-sft/final --data data/arithmetic/sft_train.jsonl

From the first --pairs SFT conversations: the chosen answer is the SFT answer; half the rejected
answers are the same text with the final number one higher (alike: high CHES expected), half an
unrelated refusal. `posttrain curate ches` drops the top --quantile; `posttrain dpo` then trains on
all pairs and on the kept pairs (with --steps scaled by kept/all so both see each pair equally
often), and the script prints the mean change of log p(y_w) per half, from the model's own
log-probs before and after. One seed, one tiny model: an illustration, not evidence.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from posttrain.cli import main
from posttrain.data.preference import tokenize_completion
from posttrain.model.inference import load_model_and_tokenizer
from posttrain.model.logprobs import token_logprobs

REFUSAL = "I cannot help with that request, sorry."


def make_pairs(data: Path, n: int) -> list[dict]:
    rows = []
    for k, line in enumerate(data.read_text().splitlines()[:n]):
        user, assistant = (m["content"] for m in json.loads(line)["messages"][:2])
        head, number = assistant.rsplit("The answer is ", 1)
        alike = k % 2 == 0
        rejected = f"{head}The answer is {int(number.rstrip('.')) + 1}." if alike else REFUSAL
        rows.append(
            {"prompt": user, "chosen": assistant, "rejected": rejected, "kind": "alike" if alike else "refusal"}
        )
    return rows


def chosen_logps(model_dir, rows: list[dict]) -> list[float]:
    model, tokenizer = load_model_and_tokenizer(str(model_dir), device="cpu")
    out = []
    with torch.no_grad():
        for r in rows:
            ex = tokenize_completion(
                tokenizer, [{"role": "user", "content": r["prompt"]}], [{"role": "assistant", "content": r["chosen"]}]
            )
            out.append(float(token_logprobs(model, torch.tensor([ex.input_ids]), torch.tensor([ex.labels])).sum()))
    return out


def dpo(model: str, data: Path, out: Path, steps: int, lr: float) -> Path:
    empty = out.parent / "empty.yaml"
    empty.write_text("{}\n")
    args = ["dpo", str(empty), "--output-dir", str(out)]
    for s in (
        f"model={model}",
        f"data=[{data}]",
        "train.micro_batch_size=8",
        f"train.max_steps={steps}",
        f"train.lr={lr}",
        "train.warmup_steps=0",
        "log.tensorboard=false",
        "data.max_length=256",
    ):
        args += ["--set", s]
    assert main(args) == 0
    return out / "final"


def report(name: str, before: list[float], after: list[float], rows: list[dict]) -> None:
    for kind in ("alike", "refusal"):
        d = [a - b for a, b, r in zip(after, before, rows) if r["kind"] == kind]
        print(
            f"{name:>14} {kind:>7} pairs: mean change of log p(y_w) {statistics.mean(d):+.3f} nats, "
            f"falling for {sum(x < 0 for x in d)}/{len(d)}"
        )


def run(args) -> None:
    work = Path(args.work or tempfile.mkdtemp(prefix="ches-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = make_pairs(Path(args.data), args.pairs)
    pairs = work / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert (
        main(
            [
                "curate",
                "ches",
                "--set",
                f"input={pairs}",
                "--set",
                f"model={args.model}",
                "--set",
                f"quantile={args.quantile}",
                "--out",
                str(work / "kept.jsonl"),
            ]
        )
        == 0
    )
    scores = [json.loads(x) for x in (work / "kept.ches.jsonl").read_text().splitlines()]
    kept = (work / "kept.jsonl").read_text().splitlines()
    for kind in ("alike", "refusal"):
        mine = [s for s, r in zip(scores, rows) if r["kind"] == kind]
        removed = sum(
            r["kind"] == kind for r in map(json.loads, (work / "kept.removed.jsonl").read_text().splitlines())
        )
        print(
            f"{kind:>7} pairs: mean CHES {statistics.mean(s['ches'] for s in mine):.1f}, length-normalised "
            f"{statistics.mean(s['ches_length_normalised'] for s in mine):.2f}, removed {removed}/{len(mine)}"
        )
    before = chosen_logps(args.model, rows)
    report("all pairs", before, chosen_logps(dpo(args.model, pairs, work / "dpo-all", args.steps, args.lr), rows), rows)
    steps = max(1, round(args.steps * len(kept) / len(rows)))
    filtered = dpo(args.model, work / "kept.jsonl", work / "dpo-filtered", steps, args.lr)
    report("CHES-filtered", before, chosen_logps(filtered, rows), rows)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="an SFT model directory (the quickstart's runs/tiny-sft/final)")
    p.add_argument("--data", required=True, help="its SFT conversations (answers ending 'The answer is N.')")
    p.add_argument("--pairs", type=int, default=64)
    p.add_argument("--quantile", type=float, default=0.5)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--work", help="working directory (default: a new temporary one)")
    run(p.parse_args())
