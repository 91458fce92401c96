"""`posttrain kv`: a bad budget or input is one line on stderr, exit status 2."""

import json

import pytest

from posttrain.cli import main


@pytest.fixture(scope="module")
def needle_file(tmp_path_factory):
    from posttrain.inference.kv_eviction.needle import needle_rows

    path = tmp_path_factory.mktemp("kv") / "test.jsonl"
    path.write_text(
        "".join(json.dumps({"prompt": r["chat_prompt"], "answer": r["answer"]}) + "\n" for r in needle_rows(3, 0, 3, 3))
    )
    return path


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--method", "h2o", "--budget", "5000"], "not smaller than the context"),
        (["--method", "h2o", "--budget", "6", "--recent", "8"], "smaller than sinks + recent"),
        (["--method", "locret", "--budget", "32"], "needs --heads"),
        (["--method", "h2o", "--budget", "3x"], "expected comma-separated integers"),
    ],
)
def test_bad_input_is_one_line_exit_2(tiny_dir, needle_file, extra, message, capsys):
    assert main(["kv", "eval", str(tiny_dir), "--data", str(needle_file), *extra]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("posttrain: error:")]
    assert len(lines) == 1 and message in lines[0]


def test_eval_writes_results(tiny_dir, needle_file, tmp_path):
    out = tmp_path / "r.json"
    assert (
        main(
            [
                "kv",
                "eval",
                str(tiny_dir),
                "--data",
                str(needle_file),
                "--method",
                "full,streaming,h2o",
                "--budget",
                "40",
                "--chunk",
                "16",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    results = json.loads(out.read_text())["results"]
    assert [r["method"] for r in results] == ["full", "streaming", "h2o"]
    assert (
        results[1]["kv_bytes_after_prefill"]
        == results[2]["kv_bytes_after_prefill"]
        < results[0]["kv_bytes_after_prefill"]
    )
