"""`posttrain eval compare DIR_A DIR_B`: how B differs from A, metric by metric, and whether the
difference could be chance.

Only documents both runs evaluated (same task name and document id) are compared. Significance is
a paired bootstrap (Koehn, 2004): resample the shared documents with replacement, recompute the
metric for both runs on the same resample, and look at the distribution of B - A. The 95% interval
is its 2.5th-97.5th percentiles; the two-sided p-value is twice the smaller share of resamples on
either side of zero. Seeded, so the same directories give the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posttrain.errors import UserError
from posttrain.eval.metrics import AGGREGATIONS, Metric, compute, resampled
from posttrain.eval.report import format_table, read_results
from posttrain.eval.sample import Sample

ITERATIONS = 1000
SIGNIFICANCE = 0.05


@dataclass
class Difference:
    task: str
    metric: str
    value_a: float
    value_b: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    n_shared: int

    @property
    def significant(self) -> bool:
        return self.p_value < SIGNIFICANCE


def bootstrap_draws(n: int, iterations: int = ITERATIONS, seed: int = 0) -> np.ndarray:
    """[iterations, n] indices of n documents drawn with replacement, seeded."""
    return np.random.default_rng(seed).integers(0, n, size=(iterations, n))


def bootstrap_interval(
    metric: Metric, samples: list[Sample], iterations: int = ITERATIONS, seed: int = 0
) -> tuple[float, float]:
    """95% percentile-bootstrap interval of one run's metric (Efron & Tibshirani, 1993): the
    2.5th-97.5th percentiles of the metric over resamples of its documents. Stays inside the
    metric's range where value +- 1.96 stderr may not (an accuracy near 0 or 1)."""
    values = resampled(metric, samples, bootstrap_draws(len(samples), iterations, seed))
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def paired_bootstrap(
    metric: Metric, a: list[Sample], b: list[Sample], iterations: int = ITERATIONS, seed: int = 0
) -> tuple[np.ndarray, float]:
    """(bootstrap deltas B - A, two-sided p-value) over paired samples a[i] <-> b[i]."""
    draws = bootstrap_draws(len(a), iterations, seed)
    deltas = resampled(metric, b, draws) - resampled(metric, a, draws)  # the same resamples for both
    p_value = min(1.0, 2 * min(float(np.mean(deltas <= 0)), float(np.mean(deltas >= 0))))
    return deltas, p_value


def _paired(samples_a: list[Sample], samples_b: list[Sample]) -> tuple[list[Sample], list[Sample]]:
    by_id = {s.doc_id: s for s in samples_b}
    shared = [s for s in samples_a if s.doc_id in by_id]
    return shared, [by_id[s.doc_id] for s in shared]


def compare_dirs(
    dir_a: str | Path, dir_b: str | Path, iterations: int = ITERATIONS, seed: int = 0
) -> tuple[list[Difference], list[str]]:
    """(differences per shared task and metric, tasks whose configurations differ between the runs,
    where a delta may not mean what it seems)."""
    results_a, samples_a = read_results(dir_a)
    results_b, samples_b = read_results(dir_b)
    shared_tasks = [t for t in results_a["tasks"] if t in results_b["tasks"]]
    if not shared_tasks:
        raise UserError(f"{dir_a} and {dir_b} share no task")
    differences = []
    for task in shared_tasks:
        a, b = _paired(samples_a.get(task, []), samples_b.get(task, []))
        if not a:
            continue
        for name, entry in results_a["tasks"][task]["metrics"].items():
            if name not in results_b["tasks"][task]["metrics"] or entry["aggregate"] not in AGGREGATIONS:
                continue
            differences.append(
                _difference(task, Metric(name, entry["aggregate"], entry["higher_is_better"]), a, b, iterations, seed)
            )
    changed = [t for t in shared_tasks if results_a["tasks"][t]["config"] != results_b["tasks"][t]["config"]]
    return differences, changed


def _difference(task: str, metric: Metric, a: list[Sample], b: list[Sample], iterations: int, seed: int) -> Difference:
    value_a, value_b = compute(metric, a), compute(metric, b)
    deltas, p_value = paired_bootstrap(metric, a, b, iterations, seed)
    low, high = np.percentile(deltas, [2.5, 97.5])
    return Difference(task, metric.name, value_a, value_b, value_b - value_a, float(low), float(high), p_value, len(a))


def differences_table(differences: list[Difference]) -> str:
    rows = [
        [
            d.task,
            d.metric,
            d.value_a,
            d.value_b,
            d.delta,
            f"[{d.ci_low:+.4f}, {d.ci_high:+.4f}]",
            d.p_value,
            "*" if d.significant else "",
            d.n_shared,
        ]
        for d in differences
    ]
    table = format_table(rows, ["task", "metric", "A", "B", "B-A", "95% CI", "p", "sig", "n"])
    return f"{table}\n* p < {SIGNIFICANCE} (paired bootstrap over the shared documents)"
