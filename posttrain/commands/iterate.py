"""`posttrain iterate RECIPE.yaml`: K rounds of on-policy preference optimisation.

    posttrain iterate RECIPE.yaml [--set KEY=VALUE] [--output-dir DIR]

Each round k, in OUTPUT/round-k/ (a normal run directory per step):
  1. sample     `posttrain sample` from the current policy: N completions of this round's prompts
                (samples.jsonl + manifest);
  2. (SELM)     with selm_ref: y_ref, one greedy completion of the reference (the round's starting
                policy), joins the candidates and is ranked with them (Zhang et al. 2024, SELM's data
                side; the dpo stage's own selm loss still samples its y_ref);
  3. score      `posttrain score` with the recipe's scorers -> scored.jsonl, pairs.jsonl (dropped
                ties and too-few rows counted in pairs.manifest.json);
  4. dpo        `posttrain dpo` unchanged on the pairs, from the current policy (which is also its
                reference: Llama-3 / Tulu 3 iterative DPO) -> round-k/dpo/final, the next policy;
  5. eval       exact match of the new policy on eval.data -> round-k/eval (as `posttrain eval`
                writes it); round-0/eval holds the starting model's, so
                `posttrain eval compare OUTPUT/round-0/eval OUTPUT/round-K/eval` is the paired bootstrap.
Resume: rerunning the command skips finished steps (their outputs exist), continues a killed
sample or score job at its last chunk and a killed DPO run at its last checkpoint.
Round k's prompts are rows [(k-1) P, k P) of `prompts` with prompts_per_round P (all rows when unset).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError

from posttrain.config.recipe import (
    NonNegative,
    NonNegFloat,
    Positive,
    Section,
    apply_override,
    describe_validation_error,
)
from posttrain.config.strict_yaml import read_yaml
from posttrain.data.jobs import write_atomically
from posttrain.errors import UserError


class IterSample(Section):
    n: Positive = 4
    temperature: NonNegFloat = 1.0
    top_p: Annotated[float, Field(gt=0, le=1)] = 1.0
    max_new_tokens: Positive = 64
    batch_size: Positive = 32
    seed: NonNegative = 0


class IterScore(Section):
    scorers: list[str] = ["math"]
    pairs: str = "best-worst"
    margin: float | None = None


class IterDPO(Section):
    recipe: str | None = None  # a dpo recipe file; model, data and output_dir are set per round
    overrides: list[str] = []  # KEY=VALUE applied to it, e.g. train.max_steps=100


class IterEval(Section):
    data: str | None = None  # prompt/reference rows; no eval when unset
    max_new_tokens: Positive = 64
    answer: str = "final_number"  # or text


class IterateRecipe(Section):
    model: str
    prompts: str
    rounds: Positive = 2
    prompts_per_round: Positive | None = None
    output_dir: str = "runs/iterate"
    selm_ref: bool = False
    sample: IterSample = IterSample()
    score: IterScore = IterScore()
    dpo: IterDPO = IterDPO()
    eval: IterEval = IterEval()


def load_iterate_recipe(path: str, overrides: list[str]) -> IterateRecipe:
    if not Path(path).is_file():
        raise UserError(f"{path}: recipe file not found")
    raw = read_yaml(Path(path))  # duplicate keys, tags, non-UTF-8: one line, as for every recipe
    for item in overrides:
        apply_override(raw, item)
    try:
        return IterateRecipe.model_validate(raw)
    except ValidationError as err:
        raise UserError(describe_validation_error(err.errors()[0], str(path), IterateRecipe)) from None


def _tool(argv: list[str]) -> int:
    """Run `posttrain sample` or `posttrain score` in this process, parsed by their own parsers
    exactly as the CLI parses them (the CLI itself sits above this module)."""
    import argparse

    from posttrain.generation.cli import add_parsers as add_generation_parsers
    from posttrain.scoring.cli import add_parsers as add_scoring_parsers

    parser = argparse.ArgumentParser(prog="posttrain")
    sub = parser.add_subparsers(dest="command", required=True)
    add_generation_parsers(sub)
    add_scoring_parsers(sub)
    args = parser.parse_args(argv)
    return args.tool_run(args) or 0


def _round_prompts(recipe: IterateRecipe, k: int, out: Path) -> Path:
    if not recipe.prompts_per_round:
        return Path(recipe.prompts)
    if out.is_file():
        return out
    lines = [line for line in Path(recipe.prompts).read_text().splitlines() if line.strip()]
    start = (k - 1) * recipe.prompts_per_round
    chosen = lines[start : start + recipe.prompts_per_round]
    if not chosen:
        raise UserError(
            f"{recipe.prompts}: {len(lines)} rows, too few for round {k} of {recipe.prompts_per_round} prompts"
        )
    write_atomically(out, "\n".join(chosen) + "\n")
    return out


def _sample(recipe: IterateRecipe, model: str, prompts: Path, out: Path, k: int, greedy: bool = False) -> None:
    s = recipe.sample
    argv = [
        "sample",
        model,
        "--prompts",
        str(prompts),
        "--out",
        str(out),
        "--n",
        "1" if greedy else str(s.n),
        "--temperature",
        "0" if greedy else str(s.temperature),
        "--top-p",
        str(s.top_p),
        "--max-new-tokens",
        str(s.max_new_tokens),
        "--batch-size",
        str(s.batch_size),
        "--seed",
        str(s.seed + 1000 * k),
        "--no-logprobs",
        "--quiet",
    ]
    if _tool(argv) != 0:
        raise UserError(f"round {k}: sampling left failed rows; see {out.with_suffix('.manifest.json')}")


def _with_reference(samples: Path, reference: Path, out: Path) -> Path:
    """SELM: each row's greedy reference completion added to its candidates (source 'reference')."""
    if out.is_file():
        return out
    refs = [json.loads(line) for line in reference.read_text().splitlines()]
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    for row, ref in zip(rows, refs, strict=True):
        row["completions"] = [*row["completions"], {**ref["completions"][0], "source": "reference"}]
        row["y_ref"] = ref["completions"][0]["text"]
    write_atomically(out, "".join(json.dumps(row) + "\n" for row in rows))
    return out


def _score(recipe: IterateRecipe, samples: Path, round_dir: Path) -> Path:
    pairs = round_dir / "pairs.jsonl"
    if (round_dir / "pairs.manifest.json").is_file():  # written last: the step is done
        return pairs
    argv = [
        "score",
        "--data",
        str(samples),
        "--out",
        str(round_dir / "scored.jsonl"),
        "--pairs",
        recipe.score.pairs,
        "--pairs-out",
        str(pairs),
        "--quiet",
    ]
    argv += [a for spec in recipe.score.scorers for a in ("--scorer", spec)]
    if recipe.score.margin is not None:
        argv += ["--margin", str(recipe.score.margin)]
    _tool(argv)
    if not pairs.read_text().strip():
        raise UserError(f"round: {pairs} holds no pairs (every prompt tied or had too few valid completions)")
    return pairs


def _dpo(recipe: IterateRecipe, model: str, pairs: Path, out: Path) -> Path:
    from posttrain.config.recipe import load_recipe
    from posttrain.stages import dpo

    if not (out / "final").is_dir():
        dpo_recipe = load_recipe(recipe.dpo.recipe, [f"model={model}", f"data=[{pairs}]", *recipe.dpo.overrides])
        dpo.run(dpo_recipe, output_dir=str(out), resume=out.exists())  # resume: continue at the last checkpoint
    return out / "final"


def _evaluate(recipe: IterateRecipe, model: str, out: Path) -> float | None:
    if not recipe.eval.data:
        return None
    results_file = out / "results.json"
    if not results_file.is_file():
        from posttrain.eval.engine import run_tasks
        from posttrain.eval.report import write_outputs
        from posttrain.generation.factory import make_backend
        from posttrain.train.periodic_eval import exact_match_task

        task = exact_match_task(recipe.eval.data, recipe.eval.answer, recipe.eval.max_new_tokens)
        results = run_tasks(make_backend(model, "hf", batch_size=50, seed=0), [task])
        write_outputs(out, results, {"model": model, "backend": "hf", "seed": 0})
    return json.loads(results_file.read_text())["tasks"]["exact_match"]["metrics"]["exact_match"]["value"]


def run_iterate(recipe: IterateRecipe, output_dir: str | None = None) -> list[dict]:
    root = Path(output_dir or recipe.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    policy = recipe.model
    report = [{"round": 0, "model": policy, "exact_match": _evaluate(recipe, policy, root / "round-0" / "eval")}]
    for k in range(1, recipe.rounds + 1):
        round_dir = root / f"round-{k}"
        round_dir.mkdir(exist_ok=True)
        prompts = _round_prompts(recipe, k, round_dir / "prompts.jsonl")
        samples = round_dir / "samples.jsonl"
        _sample(recipe, policy, prompts, samples, k)
        if recipe.selm_ref:
            _sample(recipe, policy, prompts, round_dir / "reference.jsonl", k, greedy=True)
            samples = _with_reference(samples, round_dir / "reference.jsonl", round_dir / "candidates.jsonl")
        pairs = _score(recipe, samples, round_dir)
        policy = str(_dpo(recipe, policy, pairs, round_dir / "dpo"))
        counts = json.loads((round_dir / "pairs.manifest.json").read_text())["counts"]
        report.append(
            {"round": k, "model": policy, "pairs": counts, "exact_match": _evaluate(recipe, policy, round_dir / "eval")}
        )
        print(f"round {k}: {counts['pairs']} pairs; exact match {report[-1]['exact_match']}", flush=True)
    write_atomically(root / "report.json", json.dumps(report, indent=2) + "\n")
    return report
