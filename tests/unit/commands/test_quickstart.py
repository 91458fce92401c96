"""The quickstart's report.html: the initial model's evaluation is the baseline, each stage's run
comes with its own evaluation (the layout run_quickstart writes, without training anything here)."""

from posttrain.commands.quickstart import html_report
from tests.unit.report.test_collect import _write_eval, _write_metrics


def test_quickstart_report_pairs_each_stage_with_its_evaluation(tmp_path):
    _write_eval(tmp_path / "eval" / "0", [0] * 20)
    _write_eval(tmp_path / "eval" / "1", [1] * 15 + [0] * 5)
    _write_metrics(tmp_path / "sft", [{"step": s, "loss": 1.0 / s, "lr": 1e-3} for s in (1, 2, 3)])
    (tmp_path / "sft" / "config.yaml").write_text("stage: sft\n")
    results = [
        {"model": "initial", "dir": "tiny", "eval_dir": str(tmp_path / "eval" / "0")},
        {"model": "+ SFT", "dir": str(tmp_path / "sft" / "final"), "eval_dir": str(tmp_path / "eval" / "1")},
    ]
    page = html_report(results, tmp_path).read_text()
    assert (tmp_path / "report.html").is_file()
    assert "<h2 id='run-0'>initial</h2>" in page and "<h2 id='run-1'>+ SFT</h2>" in page
    assert "data-chart='loss'" in page and "data-chart='lr'" in page
    assert "<td>+ SFT</td><td>initial</td><td>arithmetic / exact_match</td>" in page  # compared to the baseline
