"""`posttrain eval` end to end: a model and a LoRA adapter directory are evaluated, results.json and
samples.jsonl are written, and `eval compare` prints the deltas between runs, marking a real
improvement (a model that memorised the answers) as significant."""

import argparse
import json

import pytest

from posttrain.errors import UserError
from posttrain.eval.cli import add_eval_parser, eval_command
from tests.unit.eval.fakes import train_memorised


def _eval(*argv):
    parser = argparse.ArgumentParser(prog="posttrain")
    add_eval_parser(parser.add_subparsers(dest="command"))
    eval_command(parser.parse_args(["eval", *map(str, argv)]))


@pytest.fixture(scope="module")
def adapter_dir(tiny_dir, tmp_path_factory):
    """A LoRA adapter saved over the tiny model. Its B matrices start at zero, so it must give the
    base model's outputs exactly: the adapter path changes how the model is loaded, not what it says."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("adapter")
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_dir),
        LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
    )
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_dir).save_pretrained(out)
    return out


def test_eval_writes_results_and_compare_prints_deltas(tiny_dir, adapter_dir, tmp_path, capsys):
    common = [
        "--tasks",
        "arithmetic,countdown",
        "--limit",
        "6",
        "--batch-size",
        "4",
        "--seed",
        "3",
        "--set",
        "max_new_tokens=16",
        "--set",
        "arithmetic.few_shot=1",
    ]
    _eval(tiny_dir, *common, "--output-dir", tmp_path / "base")
    table = capsys.readouterr().out
    assert "arithmetic  exact_match" in table and "countdown   countdown" in table

    results = json.loads((tmp_path / "base" / "results.json").read_text())
    assert results["model"] == str(tiny_dir) and results["seed"] == 3
    assert {"torch", "transformers", "python"} <= set(results["versions"])
    arithmetic = results["tasks"]["arithmetic"]
    assert arithmetic["n_samples"] == 6 and arithmetic["config"]["few_shot"] == 1
    assert set(arithmetic["metrics"]["exact_match"]) == {"value", "stderr", "aggregate", "higher_is_better"}
    assert results["tasks"]["countdown"]["config"]["max_new_tokens"] == 16
    samples = [json.loads(line) for line in (tmp_path / "base" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 12
    assert {"task", "doc_id", "prompt", "output", "extracted", "reference", "scores"} <= set(samples[0])

    _eval(adapter_dir, *common, "--output-dir", tmp_path / "adapter")
    adapter_samples = (tmp_path / "adapter" / "samples.jsonl").read_text()
    assert [json.loads(line)["output"] for line in adapter_samples.splitlines()] == [s["output"] for s in samples]
    capsys.readouterr()

    _eval("compare", tmp_path / "base", tmp_path / "adapter", "--iterations", "100")
    out = capsys.readouterr().out
    assert "B-A" in out and "95% CI" in out
    assert "arithmetic  exact_match" in out and "countdown   countdown" in out


def test_eval_mistakes_are_user_errors(tiny_dir, tmp_path):
    with pytest.raises(UserError, match="unknown task 'arithmatic'"):
        _eval(tiny_dir, "--tasks", "arithmatic")
    with pytest.raises(UserError, match="give the tasks"):
        _eval(tiny_dir)
    with pytest.raises(UserError, match="compare needs two"):
        _eval("compare", tmp_path)
    with pytest.raises(UserError, match="not an eval output directory"):
        _eval("compare", tmp_path, tmp_path)


def test_eval_list(capsys):
    _eval("list")
    out = capsys.readouterr().out
    assert "gsm8k" in out and "countdown" in out and "pairwise_judge" in out


def test_compare_marks_a_real_improvement_significant(tiny_dir, tmp_path, capsys):
    good = train_memorised(tiny_dir, tmp_path)
    common = ["--tasks", "arithmetic", "--limit", "8", "--batch-size", "8"]
    _eval(tiny_dir, *common, "--output-dir", tmp_path / "base")
    _eval(good, *common, "--output-dir", tmp_path / "good")
    capsys.readouterr()
    _eval("compare", tmp_path / "base", tmp_path / "good")
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("arithmetic"))
    cells = row.split()
    assert cells[1:5] == ["exact_match", "0.0000", "1.0000", "1.0000"] and "*" in cells, row
