"""Likelihood displacement: the trends and the flag's kind on hand-made log-prob curves, and
`posttrain analyze displacement` on a written metrics log (plot file, JSON, one-line errors)."""

import json

import pytest

from posttrain.analysis.displacement import BOTH, CHOSEN, likelihood_displacement, trend
from posttrain.cli import main
from posttrain.log import Series


def _series(**curves) -> dict[str, Series]:
    return {key: Series(list(range(1, len(values) + 1)), [float(v) for v in values]) for key, values in curves.items()}


def test_trend_prefers_held_out_then_quarter_means():
    curves = _series(logps_chosen=[-10, -12, -11, -13, -15, -14, -16, -18], eval_logps_chosen=[-9.0, -9.5, -8.0])
    assert trend(curves, "logps_chosen").key == "eval_logps_chosen"
    assert (trend(curves, "logps_chosen").start, trend(curves, "logps_chosen").end) == (-9.0, -8.0)
    train_only = trend(_series(logps_chosen=[-10, -12, -11, -13, -15, -14, -16, -18]), "logps_chosen")
    assert (train_only.start, train_only.end) == (-11.0, -17.0)  # quarters: (-10 - 12)/2, (-16 - 18)/2
    assert trend(_series(logps_chosen=[-1]), "logps_chosen") is None


def test_flag_kinds():
    both = likelihood_displacement(_series(logps_chosen=[-10, -11, -12, -13], logps_rejected=[-10, -14, -18, -22]))
    assert both.kind == BOTH and (both.start, both.end) == (-10.0, -13.0) and both.rejected.end == -22.0
    chosen = likelihood_displacement(_series(logps_chosen=[-10, -11, -12, -13], logps_rejected=[-10, -9, -8, -7]))
    assert chosen.kind == CHOSEN
    assert (
        likelihood_displacement(_series(logps_chosen=[-13, -12, -11, -10], logps_rejected=[-10, -14, -18, -22])) is None
    )
    assert likelihood_displacement(_series(loss=[1.0, 0.5])) is None


def _write_log(run_dir, rows):
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_analyze_displacement_command(tmp_path, capsys):
    run = tmp_path / "dpo"
    rows = [
        {"step": s, "loss": 0.7 - 0.05 * s, "logps_chosen": -20.0 - s, "logps_rejected": -21.0 - 3 * s}
        for s in range(1, 9)
    ]
    _write_log(run, rows + [{"step": 8, "eval_loss": 0.5}])
    assert main(["analyze", "displacement", str(run), "--json", str(tmp_path / "d.json")]) == 0
    printed = capsys.readouterr().out
    assert "logps_chosen: -21.500 -> -27.500 (logps_chosen)" in printed  # quarter means of steps 1-2, 7-8
    assert "likelihood displacement: both decreasing" in printed
    assert (run / "displacement.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((tmp_path / "d.json").read_text())
    assert summary["displacement"] and summary["kind"] == BOTH
    assert summary["logps_rejected"] == {"key": "logps_rejected", "start": -25.5, "end": -43.5}
    assert main(["analyze", "displacement", str(run), "--out", str(tmp_path / "d.svg")]) == 0
    assert "<svg" in (tmp_path / "d.svg").read_text()


@pytest.mark.parametrize(
    "setup, problem",
    [("sft", "not a preference"), ("missing", "no such run directory"), ("badout", "cannot write the plot")],
)
def test_analyze_displacement_bad_input_is_one_line(tmp_path, capsys, setup, problem):
    run = tmp_path / "run"
    if setup != "missing":
        _write_log(
            run,
            [
                {"step": 1, "loss": 1.0, **({"logps_chosen": -1.0} if setup == "badout" else {})},
                {"step": 2, "loss": 0.9, **({"logps_chosen": -2.0} if setup == "badout" else {})},
            ],
        )
    out = ["--out", str(tmp_path / "no" / "such" / "dir.png")] if setup == "badout" else []
    assert main(["analyze", "displacement", str(run), *out]) == 2
    err = capsys.readouterr().err.strip()
    assert problem in err and len(err.splitlines()) == 1 and err.startswith("posttrain: error:")
