"""The paired bootstrap: a consistent improvement is significant, noise is not, identical runs
give zero; results written by one run are read back by compare."""

import numpy as np
import pytest

from posttrain.eval.compare import bootstrap_interval, compare_dirs, paired_bootstrap
from posttrain.eval.engine import TaskResult
from posttrain.eval.metrics import Metric, summarise
from posttrain.eval.report import read_results, write_outputs
from posttrain.eval.sample import Sample
from posttrain.eval.tasks.builtin import resolve_task


def _samples(values, name="acc"):
    return [Sample("t", i, "p", "o", scores={name: float(v)}) for i, v in enumerate(values)]


def test_paired_bootstrap():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2, 200)
    better = np.where(rng.random(200) < 0.3, 1, base)  # fixes ~30% of the misses, breaks nothing
    deltas, p = paired_bootstrap(Metric("acc"), _samples(base), _samples(better), seed=1)
    assert p < 0.01 and deltas.mean() > 0
    again, _ = paired_bootstrap(Metric("acc"), _samples(base), _samples(better), seed=1)
    assert np.array_equal(deltas, again)  # seeded
    noise = rng.integers(0, 2, 200)
    _, p_noise = paired_bootstrap(Metric("acc"), _samples(base), _samples(base ^ (noise * (rng.random(200) < 0.05))))
    assert p_noise > 0.05
    same, p_same = paired_bootstrap(Metric("acc"), _samples(base), _samples(base))
    assert p_same == 1.0 and not same.any()


def test_bootstrap_interval_brackets_the_value_like_the_normal_one_and_stays_in_range():
    values = [1] * 60 + [0] * 40  # accuracy 0.6, stderr sqrt(.6 * .4 / 99) = 0.0492
    low, high = bootstrap_interval(Metric("acc"), _samples(values), iterations=2000)
    assert low < 0.6 < high
    assert abs(low - (0.6 - 1.96 * 0.0492)) < 0.02 and abs(high - (0.6 + 1.96 * 0.0492)) < 0.02
    low, high = bootstrap_interval(Metric("acc"), _samples([1] * 19 + [0]))  # near the edge
    assert high == 1.0 and 0.8 < low < 0.95  # the normal interval would reach 1.05
    seeded = [bootstrap_interval(Metric("acc"), _samples(values), seed=3) for _ in range(2)]
    assert seeded[0] == seeded[1]


def test_corpus_metric_bootstrap_and_round_trip(tmp_path):
    task = resolve_task("classification", ["labels=[x, y]"])
    refs = ["x", "y"] * 10

    def run(preds, out):
        samples = [
            Sample(task.name, i, "p", pr, reference=r, extracted=pr, scores={"acc": float(r == pr)})
            for i, (r, pr) in enumerate(zip(refs, preds))
        ]
        metrics = [Metric("acc"), Metric("mcc", "mcc")]
        write_outputs(out, [TaskResult(task, samples, summarise(metrics, samples), 0.0)], {"model": str(out)})
        return out

    a = run(["x"] * 20, tmp_path / "a")
    b = run(refs, tmp_path / "b")
    document, by_task = read_results(b)
    assert document["tasks"]["classification"]["metrics"]["mcc"]["value"] == pytest.approx(1.0)
    assert len(by_task["classification"]) == 20
    differences, changed = compare_dirs(a, b, iterations=200)
    by_metric = {d.metric: d for d in differences}
    assert by_metric["acc"].delta == pytest.approx(0.5) and by_metric["acc"].significant
    assert by_metric["mcc"].delta == pytest.approx(1.0) and by_metric["mcc"].n_shared == 20
    assert changed == []
