"""`posttrain eval` with the code tasks as a user runs them: humaneval and swe_patch on the tiny
model write results.json (with the sandbox's isolation under notes) and samples.jsonl (each
completion's outcome); a malformed task file is one line and exit status 2."""

import json
from pathlib import Path

from tests.integration.conftest import run_cli, write_jsonl

SWE_TINY = Path(__file__).parents[2] / "examples" / "code_eval" / "swe_tiny.jsonl"


def test_humaneval_and_swe_patch_from_the_cli(tiny_dir, tmp_path):
    run_cli(
        "eval",
        tiny_dir,
        "--tasks",
        "humaneval,swe_patch",
        "--limit",
        "2",
        "--data",
        f"swe_patch={SWE_TINY}",
        "--set",
        "max_new_tokens=24",
        "--output-dir",
        tmp_path / "out",
    )
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    for task in ("humaneval", "swe_patch"):
        sandbox = results["tasks"][task]["notes"]["sandbox"]
        assert {"network_isolated", "filesystem_isolated", "pid_isolated"} <= set(sandbox)
    assert set(results["tasks"]["humaneval"]["metrics"]) == {"pass@1", "no_tests"}
    assert set(results["tasks"]["swe_patch"]["metrics"]) == {"resolved", "applied", "no_tests"}
    samples = [json.loads(line) for line in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()]
    code = [s for s in samples if s["task"] == "humaneval"]
    swe = [s for s in samples if s["task"] == "swe_patch"]
    assert [s["reference"] for s in code] == ["HumanEval/0", "HumanEval/1"]
    assert all(len(s["extra"]["outcomes"]) == 1 and s["extra"]["outcomes"][0]["status"] for s in code)
    assert [s["reference"] for s in swe] == ["calc-divide", "text-vowels"]
    assert all(s["extra"]["status"] and ("reason" in s["extra"]) for s in swe)


def test_a_malformed_task_file_is_one_line_and_exit_2(tiny_dir, tmp_path):
    bad = write_jsonl(
        tmp_path / "bad.jsonl", [{"instance_id": "x", "problem_statement": "Fix it.", "repo": "not files"}]
    )
    proc = run_cli(
        "eval",
        tiny_dir,
        "--tasks",
        "swe_patch",
        "--data",
        f"swe_patch={bad}",
        "--output-dir",
        tmp_path / "out",
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"posttrain: error: {bad}: row 1: not a 'swe_patch' row: 'repo' must be a mapping of file path to file text"
    ]
