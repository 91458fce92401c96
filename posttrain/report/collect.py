"""What `posttrain report` reads from a run directory: the resolved recipe (config.yaml), the metrics
log (metrics.jsonl) as one series per key, its evaluations (results.json + samples.jsonl as
`posttrain eval` writes them) with bootstrap intervals, and the rollouts GRPO logs (samples.jsonl).

A directory may also be an evaluation alone (results.json, no training): it is then a run with
evaluations and no curves, e.g. the initial model of the quickstart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from posttrain.analysis.displacement import Displacement
from posttrain.analysis.displacement import likelihood_displacement as displacement_in
from posttrain.errors import UserError
from posttrain.eval.compare import bootstrap_interval, compare_dirs
from posttrain.eval.metrics import AGGREGATIONS, Metric
from posttrain.eval.report import RESULTS_FILE, SAMPLES_FILE, read_results
from posttrain.eval.sample import Sample
from posttrain.log import METRICS_FILE, Series, read_metrics, series_of

RECIPE_FILE = "config.yaml"
SKIPPED_DIRS = {"checkpoints", "final", "tb"}  # never hold evaluations; can be large


@dataclass
class EvalMetric:
    task: str
    metric: str
    value: float | None
    stderr: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    higher_is_better: bool


@dataclass
class Evaluation:
    path: Path
    metrics: list[EvalMetric]
    samples: list[Sample]  # the first few of each task


@dataclass
class Run:
    path: Path
    label: str
    stage: str | None
    recipe_text: str | None
    series: dict[str, Series]
    evaluations: list[Evaluation]
    rollouts: list[dict[str, Any]]  # GRPO's last logged completions

    def last(self, key: str) -> float | None:
        series = self.series.get(key)
        return series.values[-1] if series and series.values else None


def collect_run(
    path: str | Path, label: str | None = None, eval_dirs: list[str | Path] = (), n_samples: int = 5
) -> Run:
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: no such run directory")
    found = [name for name in (RECIPE_FILE, METRICS_FILE, RESULTS_FILE) if (path / name).is_file()]
    if not found:
        raise UserError(f"{path}: not a run directory (no {RECIPE_FILE}, {METRICS_FILE} or {RESULTS_FILE})")
    recipe_text = (path / RECIPE_FILE).read_text(encoding="utf-8") if RECIPE_FILE in found else None
    stage = _stage(recipe_text, path)
    series = series_of(read_metrics(path)) if METRICS_FILE in found else {}
    evaluations = [read_evaluation(d, n_samples) for d in _unique([*eval_dirs, *find_eval_dirs(path)])]
    rollouts = [] if RESULTS_FILE in found else read_rollouts(path, n_samples)
    return Run(path, label or path.name, stage, recipe_text, series, evaluations, rollouts)


def _stage(recipe_text: str | None, path: Path) -> str | None:
    if recipe_text is None:
        return "eval" if (path / RESULTS_FILE).is_file() else None
    recipe = yaml.safe_load(recipe_text)
    if not isinstance(recipe, dict):
        raise UserError(f"{path / RECIPE_FILE}: not a recipe (expected a mapping)")
    return recipe.get("stage")


def _unique(paths) -> list[Path]:
    seen, out = set(), []
    for p in map(Path, paths):
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def find_eval_dirs(run_dir: Path) -> list[Path]:
    """Evaluation directories inside a run (itself included), outside checkpoints/, final/, tb/."""
    return sorted(
        p.parent for p in run_dir.rglob(RESULTS_FILE) if not SKIPPED_DIRS & set(p.relative_to(run_dir).parts[:-1])
    )


def read_evaluation(eval_dir: str | Path, n_samples: int = 5) -> Evaluation:
    """An evaluation's metrics with 95% percentile-bootstrap intervals over its documents (the
    resampling `posttrain eval compare` uses), and its first samples of each task."""
    document, by_task = read_results(eval_dir)
    metrics, shown = [], []
    for task, entry in document.get("tasks", {}).items():
        samples = by_task.get(task, [])
        shown.extend(samples[:n_samples])
        for name, m in entry.get("metrics", {}).items():
            low = high = None
            if len(samples) > 1 and m.get("aggregate") in AGGREGATIONS:
                low, high = bootstrap_interval(Metric(name, m["aggregate"], m["higher_is_better"]), samples)
            metrics.append(
                EvalMetric(
                    task,
                    name,
                    m.get("value"),
                    m.get("stderr"),
                    low,
                    high,
                    entry.get("n_samples", len(samples)),
                    m.get("higher_is_better", True),
                )
            )
    return Evaluation(Path(eval_dir), metrics, shown)


def read_rollouts(run_dir: Path, n_samples: int) -> list[dict[str, Any]]:
    """The last n rows of a training run's samples.jsonl (GRPO: prompt, completion, reward)."""
    path = run_dir / SAMPLES_FILE
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines()[-n_samples:]:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a run killed mid-write leaves half a line
            continue
    return rows


def likelihood_displacement(run: Run) -> Displacement | None:
    """The run's likelihood-displacement flag (analysis/displacement.py, shared with `posttrain
    analyze displacement`), or None when the chosen log-prob did not fall."""
    return displacement_in(run.series)


@dataclass
class Comparison:
    baseline: str
    run: str
    differences: list  # posttrain.eval.compare.Difference
    changed_tasks: list[str]
    note: str | None = None


def compare_evaluations(runs: list[Run], iterations: int = 1000, seed: int = 0) -> list[Comparison]:
    """`posttrain eval compare` of each later run's first evaluation against the first run that has
    one (the baseline): paired bootstrap deltas, intervals and p-values over shared documents."""
    evaluated = [r for r in runs if r.evaluations]
    if len(evaluated) < 2:
        return []
    base, out = evaluated[0], []
    for run in evaluated[1:]:
        try:
            differences, changed = compare_dirs(base.evaluations[0].path, run.evaluations[0].path, iterations, seed)
        except UserError as err:  # e.g. no shared task: say so in the table instead of failing
            out.append(Comparison(base.label, run.label, [], [], note=str(err)))
            continue
        out.append(Comparison(base.label, run.label, differences, changed))
    return out
