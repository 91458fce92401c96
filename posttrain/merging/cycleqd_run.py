"""`posttrain cycleqd RECIPE.yaml`: CycleQD over the recipe's experts on the tiny scale.

Writes OUTPUT/cycleqd.json (every child's scores, each archive's best) and OUTPUT/best-<task>/
(the best model of each task's archive, a normal model directory), and prints the best of each
archive against every expert and against the plain average of the experts."""

from __future__ import annotations

import json
from pathlib import Path

from posttrain.errors import UserError
from posttrain.merging.recipe import CycleQDRecipe


def run(recipe: CycleQDRecipe, out: str | None) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    from posttrain.checkpoint.weights import read_state_dict, write_model_dir
    from posttrain.eval import evaluate_tasks
    from posttrain.log import progress_bar
    from posttrain.merging.cycleqd import run_cycleqd
    from posttrain.merging.run import check_compatible
    from posttrain.model.load import load_tokenizer
    from posttrain.train.periodic_eval import exact_match_task

    out_dir = Path(out or recipe.output or "")
    if not str(out or recipe.output or ""):
        raise UserError("no output directory: set output: DIR in the recipe or pass --out DIR")
    for task in recipe.tasks:
        if not Path(task.data).is_file():
            raise UserError(f"{task.data}: no such file (tasks.data)")
    check_compatible([Path(recipe.base), *map(Path, recipe.experts)])
    base = read_state_dict(recipe.base)
    experts = [{k: v.float() - base[k].float() for k, v in read_state_dict(e).items()} for e in recipe.experts]
    names = [t.name or Path(t.data).stem for t in recipe.tasks]
    dirs = task_dirs(out_dir, names)
    tasks = [{**exact_match_task(t.data, t.answer, t.max_new_tokens), "name": n} for t, n in zip(recipe.tasks, names)]
    net, tok = AutoModelForCausalLM.from_pretrained(recipe.base, dtype=torch.float32), load_tokenizer(recipe.base)

    def model_state(tau):
        return {k: base[k] + tau[k].to(base[k].dtype) for k in base}

    seen, bar = [], progress_bar(len(experts) + recipe.generations + 1, desc="cycleqd")

    def evaluate(tau) -> list[float]:  # experts first, then one call per child
        net.load_state_dict(model_state(tau), strict=False)
        metrics = evaluate_tasks(net, tok, tasks, recipe.limit)
        seen.append([metrics[f"{n}/exact_match"] for n in names])
        bar.update(1)
        return seen[-1]

    archives = run_cycleqd(
        experts,
        evaluate,
        recipe.generations,
        recipe.bins,
        recipe.seed,
        recipe.mu,
        recipe.sigma_crossover,
        recipe.sigma_mutation,
    )
    average = evaluate({k: sum(t[k] for t in experts) / len(experts) for k in base})
    bar.close()
    report = {
        "tasks": names,
        "experts": seen[: len(experts)],
        "children": seen[len(experts) : -1],
        "average_of_experts": average,
        "best": {},
    }
    for archive, name in zip(archives, names):
        best = archive.best()
        report["best"][name] = {"from": best.name, "scores": best.scores}
        write_model_dir(model_state(best.tau), recipe.base, dirs[name])
    (out_dir / "cycleqd.json").write_text(json.dumps(report, indent=2))
    return report


def task_dirs(out_dir: Path, names: list[str]) -> dict[str, Path]:
    """out_dir/best-<name> per task, the name made a safe file name (a name is user input:
    '../../x' must not leave out_dir); two names that become the same directory are an error."""
    from posttrain.checkpoint.output_dir import path_inside

    dirs = {name: path_inside(out_dir, f"best-{name}") for name in names}
    if len(set(dirs.values())) != len(dirs):
        raise UserError(f"task names {names}: two of them give the same directory name; rename one")
    return dirs


def table(report: dict) -> str:
    names = report["tasks"]
    lines = ["| model | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    rows = [(f"expert {i} ({names[i]})", s) for i, s in enumerate(report["experts"])]
    rows.append(("average of the experts", report["average_of_experts"]))
    rows += [(f"CycleQD best for {n} ({b['from']})", b["scores"]) for n, b in report["best"].items()]
    lines += [f"| {label} | " + " | ".join(f"{s:.1%}" for s in scores) + " |" for label, scores in rows]
    return "\n".join(lines)
