"""`posttrain quantize` and `posttrain quantize-study` on the tiny model."""

import json

import pytest
from transformers import AutoModelForCausalLM

from posttrain.cli import main
from posttrain.data.synth.arithmetic import eval_rows, pretrain_rows
from posttrain.eval import evaluate_tasks
from posttrain.model.load import load_tokenizer


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    d = tmp_path_factory.mktemp("quant-data")
    (d / "text.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pretrain_rows(8, seed=0)))
    (d / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in eval_rows(4, seed=1)))
    return d


def perplexity(model_dir, text):
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    task = {"name": "perplexity", "kind": "perplexity", "format": "text", "data": str(text)}
    return evaluate_tasks(model, load_tokenizer(str(model_dir)), [task])["perplexity/perplexity"]


def test_rtn_8_bit_keeps_perplexity_within_1_percent(tiny_dir, texts, tmp_path):
    assert (
        main(
            [
                "quantize",
                str(tiny_dir),
                "--method",
                "rtn",
                "--bits",
                "8",
                "--group-size",
                "32",
                "--out",
                str(tmp_path / "q8"),
            ]
        )
        == 0
    )
    record = json.loads((tmp_path / "q8" / "quantization.json").read_text())
    assert record["method"] == "rtn" and record["bits"] == 8
    full, q8 = perplexity(tiny_dir, texts / "text.jsonl"), perplexity(tmp_path / "q8", texts / "text.jsonl")
    assert abs(q8 - full) / full < 1e-2, (full, q8)


@pytest.mark.parametrize(
    "argv, problem",
    [
        (["--method", "rtn", "--bits", "9"], "2..8 bits"),
        (["--method", "rtn", "--bits", "1"], "2..8 bits"),
        (["--method", "nf4", "--bits", "3"], "4-bit format"),
        (["--method", "int8", "--bits", "8", "--group-size", "64"], "whole rows"),
        (["--method", "gptq", "--bits", "4"], "gptq is not available"),
    ],
)
def test_bad_arguments_are_one_line(tiny_dir, tmp_path, capsys, argv, problem):
    assert main(["quantize", str(tiny_dir), *argv, "--out", str(tmp_path / "q")]) == 2
    err = capsys.readouterr().err.strip()
    assert problem in err and len(err.splitlines()) == 1 and not (tmp_path / "q").exists()


def test_study_table(tiny_dir, texts, tmp_path, capsys):
    assert (
        main(
            [
                "quantize-study",
                str(tiny_dir),
                "--text",
                str(texts / "text.jsonl"),
                "--task-data",
                str(texts / "test.jsonl"),
                "--methods",
                "rtn,gptq",
                "--bits",
                "8,2",
                "--group-size",
                "64",
                "--limit",
                "4",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    rows = json.loads((tmp_path / "study.json").read_text())
    assert [(r["method"], r["bits"]) for r in rows] == [
        ("none (fp32)", 32),
        ("rtn", 8),
        ("rtn", 2),
        ("gptq", 8),
        ("gptq", 2),
    ]
    ppl = {(r["method"], r["bits"]): r["perplexity"] for r in rows}
    full = ppl[("none (fp32)", 32)]
    assert abs(ppl[("rtn", 8)] - full) < abs(ppl[("rtn", 2)] - full)
    assert ppl[("gptq", 2)] is None and "| gptq | 2 | 64 | not run |" in capsys.readouterr().out
