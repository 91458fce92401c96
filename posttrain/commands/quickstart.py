"""`posttrain quickstart`: the whole spine on the default tiny model, on CPU, in a few minutes.

1. generate the arithmetic task (data/synth/arithmetic.py) and build the tiny Llama + tokenizer;
2. continual pre-training on number prose (recipes/tiny/pretrain.yaml);
3. SFT on arithmetic chat (recipes/tiny/sft.yaml);
4. with --rl, GRPO from the SFT model with the final-answer verifier as reward (recipes/tiny/grpo.yaml);
5. exact-match accuracy on 200 held-out problems after each step, printed as a table.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from posttrain.config.recipe import load_recipe
from posttrain.data.synth.arithmetic import write_quickstart_data
from posttrain.errors import UserError
from posttrain.eval.engine import run_tasks
from posttrain.eval.report import write_outputs
from posttrain.generation.factory import make_backend
from posttrain.model.tiny import ensure_tiny
from posttrain.report import write_report
from posttrain.report.collect import collect_run
from posttrain.stages import grpo, pretrain, sft
from posttrain.train.periodic_eval import exact_match_task

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "tiny"


def _recipe(name: str, overrides: list[str]):
    path = RECIPES / f"{name}.yaml"
    if not path.is_file():
        raise UserError(f"{path}: quickstart recipe not found (run the quickstart from a clone)")
    return load_recipe(path, overrides)


def _evaluate(model_dir: str | Path, test_path: Path, out_dir: Path) -> float:
    """Exact match through the evaluation engine, with results.json and samples.jsonl written to
    out_dir exactly as `posttrain eval` writes them."""
    task = exact_match_task(str(test_path), "final_number", max_new_tokens=64)
    results = run_tasks(make_backend(str(model_dir), "hf", batch_size=50, seed=0), [task])
    write_outputs(out_dir, results, {"model": str(model_dir), "backend": "hf", "seed": 0})
    return results[0].values()["exact_match"]


def run_quickstart(output_dir: str, fast: bool = False, rl: bool = False) -> dict:
    out = Path(output_dir)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} is not empty: remove it or pass --output-dir")
    started = time.perf_counter()
    data = write_quickstart_data(out / "data")
    tiny = ensure_tiny("default")
    steps = ["train.max_steps=20", "train.eval_every=10", "train.save_every=10", "train.warmup_steps=2"] if fast else []
    rows = [("tiny Llama, initial weights", tiny, 0.0)]
    t0 = time.perf_counter()
    pretrain.run(
        _recipe("pretrain", [f"data.sources.0.path={data['pretrain']}", *steps]), output_dir=str(out / "pretrain")
    )
    rows.append(("+ continual pre-training", out / "pretrain" / "final", time.perf_counter() - t0))
    t0 = time.perf_counter()
    sft.run(
        _recipe(
            "sft",
            [
                f"model={out / 'pretrain' / 'final'}",
                f"data.sources.0.path={data['sft_train']}",
                f"data.eval_sources.0.path={data['sft_eval']}",
                f"eval.data={data['test']}",
                *steps,
            ],
        ),
        output_dir=str(out / "sft"),
    )
    rows.append(("+ supervised fine-tuning", out / "sft" / "final", time.perf_counter() - t0))
    if rl:
        t0 = time.perf_counter()
        grpo.run(
            _recipe(
                "grpo",
                [
                    f"model={out / 'sft' / 'final'}",
                    f"data.sources.0.path={data['rl_prompts']}",
                    f"eval.data={data['test']}",
                    *steps,
                ],
            ),
            output_dir=str(out / "grpo"),
        )
        rows.append(("+ GRPO, verifier reward", out / "grpo" / "final", time.perf_counter() - t0))
    report = _report(rows, data["test"], out)
    report["wall_time_s"] = round(time.perf_counter() - started, 1)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    html = html_report(report["results"], out)
    print(f"\nreport: {html} (open it in a browser)")
    print(
        f"wall time {report['wall_time_s']} s; outputs: {out}/ (report.json; eval/N/ with "
        f"results.json and samples.jsonl; pretrain/ and sft/ with metrics.jsonl, tb/, final/)"
    )
    print(f"try it: posttrain generate {rows[-1][1]} --prompt 'What is 47 + 38?'")
    return report


def html_report(results: list[dict], out: Path) -> Path:
    """report.html: the initial model's evaluation as the baseline, then each stage's run with its
    evaluation (significance against the baseline, curves overlaid)."""
    first, *trained = results
    runs = [collect_run(first["eval_dir"], first["model"])]
    runs += [collect_run(Path(r["dir"]).parent, r["model"], [r["eval_dir"]]) for r in trained]
    return write_report(runs, out / "report.html", "posttrain quickstart")


def _report(rows, test_path: Path, out: Path) -> dict:
    results, lines = [], []
    for i, (name, model_dir, seconds) in enumerate(rows):
        accuracy = _evaluate(model_dir, test_path, out / "eval" / f"{i}")
        results.append(
            {
                "model": name,
                "dir": str(model_dir),
                "exact_match": accuracy,
                "train_time_s": round(seconds, 1),
                "eval_dir": str(out / "eval" / f"{i}"),
            }
        )
        lines.append(f"| {name:<28} | {accuracy:>11.1%} | {seconds:>14.0f} |")
    n = sum(1 for _ in open(test_path))
    print(f"\nExact match on {n} held-out arithmetic problems (none of their operand pairs is in training)")
    print(f"| {'model':<28} | exact match | train time (s) |")
    print(f"|{'-' * 30}|{'-' * 13}|{'-' * 16}|")
    print("\n".join(lines))
    return {"test": str(test_path), "results": results}
