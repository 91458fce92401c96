"""`posttrain score` with named scorers: weighted verifier scores per completion, pairs in the three
modes with dropped rows counted, rejection-sampled SFT data (verified and majority), and the judge
and density-ratio scorers on the tiny model checked against hand-derived values."""

import json

import pytest

from posttrain.cli import main
from tests.integration.conftest import write_jsonl


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _sampled(texts, **fields):
    return {**fields, "completions": [{"text": t, "finish_reason": "stop", "num_tokens": 3} for t in texts]}


@pytest.fixture()
def samples(tmp_path):
    return write_jsonl(
        tmp_path / "samples.jsonl",
        [
            _sampled(["The answer is 4.", "It is 5", "4"], prompt="2+2?", answer="4", source="m1"),
            _sampled(["7", "7"], prompt="3+4?", answer="7", source="m1"),  # all correct: tie
            _sampled(["9"], prompt="4+5?", answer="9", source="m1"),  # too few
            {"prompt": [{"role": "user", "content": "1+1?"}], "answer": "2", "responses": ["2", "3"]},
        ],
    )


def test_weighted_verifier_scores_pairs_and_sft(samples, tmp_path, capsys):
    out = tmp_path / "scored.jsonl"
    assert (
        main(
            [
                "score",
                "--data",
                str(samples),
                "--out",
                str(out),
                "--quiet",
                "--scorer",
                "math:weight=2",
                "--scorer",
                "format:pattern=^The answer,weight=0.5,label=style",
                "--pairs",
                "best-worst",
                "--sft-out",
                str(tmp_path / "sft.jsonl"),
            ]
        )
        == 0
    )
    rows = _read(out)
    first = rows[0]["completions"]
    assert [c["scores"] for c in first] == [
        {"math": 1.0, "style": 1.0},
        {"math": 0.0, "style": 0.0},
        {"math": 1.0, "style": 0.0},
    ]
    assert [c["score"] for c in first] == [2.5, 0.0, 2.0] and [c["correct"] for c in first] == [True, False, True]
    assert rows[0]["answer"] == "4" and first[0]["num_tokens"] == 3  # the sample's fields are kept
    pairs = _read(tmp_path / "scored.pairs.jsonl")
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [
        ("The answer is 4.", "It is 5"),
        ([{"role": "assistant", "content": "2"}], [{"role": "assistant", "content": "3"}]),
    ]
    assert json.loads((tmp_path / "scored.pairs.manifest.json").read_text())["counts"] == {
        "pairs": 2,
        "too_few": 1,
        "ties": 1,
        "below_margin": 0,
    }
    sft = _read(tmp_path / "sft.jsonl")
    assert [s["messages"][-1]["content"] for s in sft] == ["The answer is 4.", "4", "7", "9", "2"]  # "7" once
    assert sft[0]["messages"][0] == {"role": "user", "content": "2+2?"}


def test_margin_per_source_and_majority(tmp_path):
    data = write_jsonl(
        tmp_path / "d.jsonl",
        [
            _sampled(["4", "5", "six"], prompt="2+2?", answer="4", source="big"),
            _sampled(["4", "4", "3"], prompt="2+2?", answer="4", source="small"),
            _sampled(["1", "2", "2"], prompt="1+1?", answer="2", source="big"),
        ],
    )
    base = ["score", "--data", str(data), "--quiet", "--scorer", "math"]
    assert main(base + ["--out", str(tmp_path / "m.jsonl"), "--pairs", "margin", "--margin", "1"]) == 0
    assert len(_read(tmp_path / "m.pairs.jsonl")) == 2 + 2 + 2  # (4>5, 4>six), (4>3 twice), (2>1 twice)
    assert (
        main(
            base
            + [
                "--out",
                str(tmp_path / "s.jsonl"),
                "--pairs",
                "per-source",
                "--sft-out",
                str(tmp_path / "maj.jsonl"),
                "--sft-mode",
                "majority",
            ]
        )
        == 0
    )
    pairs = _read(tmp_path / "s.pairs.jsonl")
    assert [(p["prompt"], p["chosen"], p["rejected"]) for p in pairs] == [("2+2?", "4", "5"), ("1+1?", "2", "1")]
    assert [s["messages"][-1]["content"] for s in _read(tmp_path / "maj.jsonl")] == ["4", "2"]


def test_unknown_scorer_and_missing_reference_are_one_line(tmp_path, capsys):
    data = write_jsonl(tmp_path / "d.jsonl", [_sampled(["4"], prompt="2+2?", answer="4"), _sampled(["x"], prompt="?")])
    base = ["score", "--data", str(data), "--out", str(tmp_path / "o.jsonl"), "--quiet"]
    assert main(base + ["--scorer", "maths"]) == 2
    assert "reward 'maths': not a registered name" in capsys.readouterr().err
    assert main(base + ["--scorer", "math"]) == 2
    assert "d.jsonl: row 2: scorer 'math' needs field 'reference'" in capsys.readouterr().err
    assert main(base + ["--scorer", "judge"]) == 2
    assert "scorer 'judge' needs options" in capsys.readouterr().err


def test_density_ratio_and_judge_on_the_tiny_model(tiny_dir, tmp_path):
    from posttrain.generation.backend import HFBackend, LoglikelihoodRequest
    from posttrain.generation.prompter import Prompter
    from posttrain.model.inference import load_model_and_tokenizer
    from posttrain.rewards import reward_function

    sample = {"prompt": [{"role": "user", "content": "What is 2+2?"}], "reference": "4"}
    same, _ = reward_function("density_ratio", {"strong": str(tiny_dir), "weak": str(tiny_dir)})
    assert same.batched([sample, sample], ["4", "five"]) == [0.0, 0.0]  # one model against itself
    ratio, _ = reward_function(
        "density_ratio", {"strong": str(tiny_dir), "weak": str(tiny_dir), "strong_system": "Answer with digits."}
    )
    model, tok = load_model_and_tokenizer(str(tiny_dir))
    backend, prompter = HFBackend(model, tok, show_progress=False), Prompter(tok, True)
    with_system = [{"role": "system", "content": "Answer with digits."}] + sample["prompt"]
    lp = [
        backend.loglikelihood([LoglikelihoodRequest(prompter.encode(m), prompter.continuation_ids("4"))])[0].logprob
        for m in (with_system, sample["prompt"])
    ]
    assert ratio(sample, "4") == pytest.approx(lp[0] - lp[1], abs=1e-5) and lp[0] != lp[1]

    single, _ = reward_function("judge", {"model": str(tiny_dir)})
    grade = single(sample, "4")
    assert 1.0 <= grade <= 10.0
    pairwise, _ = reward_function("judge", {"model": str(tiny_dir), "mode": "pairwise"})
    assert pairwise(sample, "4") == pytest.approx(0.5)  # the baseline itself: both orders cancel
    assert pairwise(sample, "4 apples") != pytest.approx(0.5)
