"""Reading run directories: one series per metrics key, evaluations found inside a run with
bootstrap intervals, the likelihood-displacement flag on hand-made log-prob curves."""

import json

import pytest

from posttrain.errors import UserError
from posttrain.eval.engine import TaskResult
from posttrain.eval.report import write_outputs
from posttrain.eval.sample import Sample
from posttrain.eval.tasks.builtin import resolve_task
from posttrain.log import Series, series_of
from posttrain.report.cli import pairs_by_run
from posttrain.report.collect import (
    Run,
    collect_run,
    compare_evaluations,
    find_eval_dirs,
    likelihood_displacement,
)


def _write_metrics(run_dir, rows):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _write_eval(out_dir, scores):
    task = resolve_task("arithmetic", [])
    samples = [
        Sample(task.name, i, f"q{i}", "o", reference=1, extracted=1, scores={"exact_match": float(v)})
        for i, v in enumerate(scores)
    ]
    from posttrain.eval.metrics import Metric, summarise

    result = TaskResult(task, samples, summarise([Metric("exact_match")], samples), 0.1)
    write_outputs(out_dir, [result], {"model": "m"})


def test_series_split_train_and_eval_rows_and_skip_non_numbers():
    rows = [
        {"step": 1, "loss": 2.0, "lr": 1e-3, "note": "x", "flag": True},
        {"step": 2, "loss": 1.5, "lr": 1e-3, "bad": float("nan")},
        {"step": 2, "eval_loss": 1.7, "exact_match": 0.25},
    ]
    series = series_of(rows)
    assert set(series) == {"loss", "lr", "eval_loss", "exact_match"}
    assert series["loss"].steps == [1, 2] and series["loss"].values == [2.0, 1.5]
    assert series["eval_loss"].steps == [2] and series["exact_match"].values == [0.25]


def _run(**series):
    return Run(None, "r", "dpo", None, {k: Series(list(range(1, len(v) + 1)), v) for k, v in series.items()}, [], [])


def test_displacement_prefers_the_held_out_log_prob():
    # training log-probs rise but the held-out chosen log-prob fell: flagged from eval
    found = likelihood_displacement(_run(logps_chosen=[-20, -19, -18, -17], eval_logps_chosen=[-10.0, -10.5]))
    assert (found.key, found.start, found.end) == ("eval_logps_chosen", -10.0, -10.5)
    assert likelihood_displacement(_run(logps_chosen=[-20, -21], eval_logps_chosen=[-10.0, -9.0])) is None


def test_displacement_from_training_compares_first_and_last_quarter_means():
    values = [-10, -12, -11, -13, -14, -13, -15, -16]  # quarters: mean(-10, -12) = -11, mean(-15, -16) = -15.5
    found = likelihood_displacement(_run(logps_chosen=values))
    assert (found.key, found.start, found.end) == ("logps_chosen", -11.0, -15.5)
    assert likelihood_displacement(_run(logps_chosen=values[::-1])) is None
    assert likelihood_displacement(_run(loss=[1.0, 0.5])) is None  # not a preference run


def test_collect_run_reads_recipe_metrics_and_evaluations_inside_the_run(tmp_path):
    run = tmp_path / "run"
    _write_metrics(run, [{"step": 1, "loss": 1.0}])
    (run / "config.yaml").write_text("stage: sft\nmodel: {path: m}\n")
    _write_eval(run / "eval", [1, 0, 1, 1])
    _write_eval(run / "checkpoints" / "step-1" / "eval", [0, 0])  # never looked at
    collected = collect_run(run, n_samples=2)
    assert collected.stage == "sft" and collected.label == "run" and "stage: sft" in collected.recipe_text
    assert find_eval_dirs(run) == [run / "eval"]
    (evaluation,) = collected.evaluations
    (metric,) = evaluation.metrics
    assert metric.value == 0.75 and metric.n == 4 and metric.ci_low <= 0.75 <= metric.ci_high <= 1.0
    assert len(evaluation.samples) == 2


def test_an_eval_directory_alone_is_a_run_and_compares_against_later_runs(tmp_path):
    _write_eval(tmp_path / "base", [0] * 40)
    _write_metrics(tmp_path / "tuned", [{"step": 1, "loss": 1.0}])
    _write_eval(tmp_path / "tuned" / "eval", [1] * 30 + [0] * 10)
    runs = [collect_run(tmp_path / "base", "base"), collect_run(tmp_path / "tuned")]
    assert runs[0].stage == "eval" and runs[0].series == {}
    (comparison,) = compare_evaluations(runs)
    (difference,) = comparison.differences
    assert comparison.baseline == "base" and difference.delta == 0.75 and difference.significant


def test_not_a_run_directory_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not a run directory"):
        collect_run(tmp_path)
    with pytest.raises(UserError, match="no such run directory"):
        collect_run(tmp_path / "missing")


def test_eval_and_label_options_name_a_given_run():
    assert pairs_by_run(["runs/a=x", "runs/a/=y"], ["runs/a", "b"], "--eval") == {"runs/a": ["x", "y"], "b": []}
    with pytest.raises(UserError, match="not one of the RUN_DIRs"):
        pairs_by_run(["c=x"], ["runs/a"], "--eval")
    with pytest.raises(UserError, match="expected RUN_DIR=VALUE"):
        pairs_by_run(["x"], ["runs/a"], "--label")


def test_cli_reports_a_wrong_directory_in_one_line(tmp_path, capsys):
    from posttrain.cli import main

    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r.html")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"posttrain: error: {tmp_path}: not a run directory (no config.yaml, metrics.jsonl or results.json)"
    )
    assert not (tmp_path / "r.html").exists()
