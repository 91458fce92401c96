"""`posttrain iterate` on the tiny model: two rounds of sample -> score -> pairs -> dpo -> eval, each a
run directory; round 2 samples from round 1's model; SELM's greedy y_ref joins the candidates; a
crash in round 2's DPO resumes there without redoing round 1 or round 2's sampling."""

import json

import pytest
import yaml

from posttrain.cli import main
from tests.integration.conftest import write_jsonl


def length_score(sample, completion):
    """A scorer that always separates completions of different length (the tiny model is random)."""
    return float(len(completion))


@pytest.fixture()
def recipe(tiny_dir, tmp_path):
    prompts = write_jsonl(
        tmp_path / "prompts.jsonl", [{"prompt": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(8)]
    )
    test = write_jsonl(
        tmp_path / "test.jsonl", [{"prompt": f"What is {i} + 2?", "answer": str(i + 2)} for i in range(4)]
    )
    doc = {
        "model": str(tiny_dir),
        "prompts": str(prompts),
        "rounds": 2,
        "prompts_per_round": 4,
        "output_dir": str(tmp_path / "it"),
        "selm_ref": True,
        "sample": {"n": 2, "max_new_tokens": 6, "batch_size": 4},
        "score": {"scorers": ["tests.integration.test_iterate:length_score"]},
        "dpo": {"overrides": ["train.max_steps=2", "train.micro_batch_size=2", "log.tensorboard=false"]},
        "eval": {"data": str(test), "max_new_tokens": 4},
    }
    path = tmp_path / "iterate.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_two_rounds_resume_at_the_failed_step(recipe, tmp_path, monkeypatch):
    from posttrain.stages import dpo

    real_run, calls = dpo.run, []

    def crash_in_round_two(recipe_, output_dir, resume=False):
        calls.append(output_dir)
        if "round-2" in output_dir and len(calls) == 2:
            raise KeyboardInterrupt  # as if killed
        return real_run(recipe_, output_dir=output_dir, resume=resume)

    monkeypatch.setattr(dpo, "run", crash_in_round_two)
    assert main(["iterate", str(recipe)]) == 130
    root = tmp_path / "it"
    round_one = {p: p.stat().st_mtime_ns for p in (root / "round-1").rglob("*") if p.is_file()}
    sampled = (root / "round-2" / "samples.manifest.json").read_text()
    assert main(["iterate", str(recipe)]) == 0
    assert {p: p.stat().st_mtime_ns for p in (root / "round-1").rglob("*") if p.is_file()} == round_one
    assert (root / "round-2" / "samples.manifest.json").read_text() == sampled  # not sampled again
    assert calls[-1].endswith("round-2/dpo") and len(calls) == 3

    report = json.loads((root / "report.json").read_text())
    assert [r["round"] for r in report] == [0, 1, 2] and all(0 <= r["exact_match"] <= 1 for r in report)
    assert json.loads(sampled)["model"] == str(root / "round-1" / "dpo" / "final")  # on-policy
    candidates = [json.loads(line) for line in (root / "round-1" / "candidates.jsonl").read_text().splitlines()]
    assert len(candidates) == 4 and all(len(r["completions"]) == 3 for r in candidates)
    assert all(r["completions"][-1]["source"] == "reference" and r["y_ref"] for r in candidates)
    pairs = [json.loads(line) for line in (root / "round-1" / "pairs.jsonl").read_text().splitlines()]
    assert pairs and all(len(p["chosen"]) > len(p["rejected"]) for p in pairs)
    assert (root / "round-2" / "eval" / "samples.jsonl").is_file()


def test_unknown_recipe_key_is_one_line(recipe, capsys):
    assert main(["iterate", str(recipe), "--set", "sample.temprature=1"]) == 2
    assert "unknown key 'sample.temprature'" in capsys.readouterr().err
