"""`posttrain reward-eval --scorer`: RewardBench accuracy of any named scorer (a verifier, a user
function, an LLM judge behind a real loopback HTTP server, the density ratio of two local models),
checked against accuracies worked out by hand."""

import json

import pytest

from posttrain.cli import main
from tests.unit.eval.fakes import json_server


def _pairs(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _results(out):
    return json.loads((out / "results.json").read_text())


def response_length(sample: dict, completion: str) -> float:
    """A user scorer (named by dotted path in the test): longer is better."""
    return float(len(completion))


ROWS = [  # category a: both right; b: one wrong way round, one where both are wrong (a tie)
    {"prompt": "1+1?", "reference": "2", "chosen": "2", "rejected": "3", "category": "a"},
    {"prompt": "2+2?", "reference": "4", "chosen": "4", "rejected": "five", "category": "a"},
    {"prompt": "3+3?", "reference": "6", "chosen": "7", "rejected": "6", "category": "b"},
    {"prompt": "4+4?", "reference": "8", "chosen": "9", "rejected": "10", "category": "b"},
]


def test_a_verifier_scores_pairs_and_ties_count_as_wrong(tmp_path, capsys):
    data, out = _pairs(tmp_path / "p.jsonl", ROWS), tmp_path / "out"
    assert main(["reward-eval", "--scorer", "exact_match", "--data", data, "--output-dir", str(out)]) == 0
    doc = _results(out)
    assert doc["categories"]["a"]["accuracy"] == 1.0 and doc["categories"]["b"]["accuracy"] == 0.0
    assert doc["mean"] == 0.5 and doc["pairs"] == 4 and doc["scorers"] == ["exact_match"]
    scores = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert [(s["chosen_score"], s["rejected_score"]) for s in scores] == [(1, 0), (1, 0), (0, 1), (0, 0)]


def test_weighted_scorers_and_a_user_function(tmp_path):
    """total = exact_match - 0.1 * length: pair 2 ('4' vs 'five') and 4 ('9' vs '10': shorter
    chosen) change sides against the verifier alone; a: 2/2, b: 1/2 -> mean 0.75."""
    data, out = _pairs(tmp_path / "p.jsonl", ROWS), tmp_path / "out"
    user = "tests.unit.scoring.test_scorer_eval:response_length"
    assert (
        main(
            [
                "reward-eval",
                "--scorer",
                "exact_match",
                "--scorer",
                f"{user}:weight=-0.1,verifier=false",
                "--data",
                data,
                "--output-dir",
                str(out),
            ]
        )
        == 0
    )
    doc = _results(out)
    # chosen - rejected: 1-0.1 vs -0.1 | 1-0.1 vs -0.4 | -0.1 vs 1-0.1 | -0.1 vs -0.2
    assert doc["categories"]["a"]["accuracy"] == 1.0 and doc["categories"]["b"]["accuracy"] == 0.5
    assert doc["mean"] == 0.75


def test_an_http_judge_as_the_scorer(tmp_path):
    """The judge endpoint grades 9 a response containing 'good' and 2 otherwise (answer text, no
    log-probs): its expected grade is that number, so a pair is right iff only the chosen is good."""
    seen = []

    def reply(body, headers):
        prompt = body["messages"][-1]["content"]
        seen.append(prompt)
        response = prompt.split("# Response\n", 1)[1]
        return 200, {"choices": [{"message": {"content": "9" if "good" in response else "2"}}]}

    rows = [
        {"prompt": "Say hi", "chosen": "good hi", "rejected": "bad", "subset": "alpacaeval-easy"},
        {"prompt": "Say bye", "chosen": "meh", "rejected": "good bye", "subset": "alpacaeval-easy"},
        {"prompt": "Refuse", "chosen": "good no", "rejected": "sure", "subset": "refusals-dangerous"},
    ]
    data, out = _pairs(tmp_path / "p.jsonl", rows), tmp_path / "out"
    with json_server(reply) as url:
        assert (
            main(
                ["reward-eval", "--scorer", f"judge:model={url},timeout_s=5", "--data", data, "--output-dir", str(out)]
            )
            == 0
        )
    doc = _results(out)
    assert len(seen) == 6 and "Say hi" in seen[0]
    assert doc["categories"]["alpacaeval-easy"]["accuracy"] == 0.5
    assert doc["groups"] == {"chat": 0.5, "safety": 1.0} and doc["mean"] == 0.75  # RewardBench sections


def test_density_ratio_of_the_tiny_model(tiny_dir, tmp_path):
    """One model against itself: every ratio is 0, every pair a tie, accuracy 0; with a system
    message for the strong side the scores are the scorer's own (checked through reward_function)."""
    from posttrain.rewards import reward_function

    rows = [{"prompt": "What is 2+2?", "chosen": "4", "rejected": "five"}]
    data, out = _pairs(tmp_path / "p.jsonl", rows), tmp_path / "out"
    assert (
        main(
            [
                "reward-eval",
                "--scorer",
                f"density_ratio:strong={tiny_dir},weak={tiny_dir}",
                "--data",
                data,
                "--output-dir",
                str(out),
            ]
        )
        == 0
    )
    assert _results(out)["mean"] == 0.0
    spec = f"density_ratio:strong={tiny_dir},weak={tiny_dir},strong_system=Answer with digits."
    assert main(["reward-eval", "--scorer", spec, "--data", data, "--output-dir", str(out)]) == 0
    scored = json.loads((out / "scores.jsonl").read_text())
    ratio, _ = reward_function(
        "density_ratio", {"strong": str(tiny_dir), "weak": str(tiny_dir), "strong_system": "Answer with digits."}
    )
    sample = {"prompt": [{"role": "user", "content": "What is 2+2?"}], "reference": None}
    expected = ratio.batched([sample, sample], ["4", "five"])
    assert [scored["chosen_score"], scored["rejected_score"]] == pytest.approx(expected, abs=1e-5)
    assert expected[0] != 0.0 and _results(out)["mean"] == float(expected[0] > expected[1])


HALF_PAIR = {"prompt": "x", "chosen": "y"}
NO_REFERENCE = {"prompt": "x", "chosen": "y", "rejected": "z"}


@pytest.mark.parametrize(
    "second,args,message",
    [
        (HALF_PAIR, ["--scorer", "exact_match"], "p.jsonl: row 2: field 'rejected': missing"),
        (NO_REFERENCE, ["--scorer", "math"], "p.jsonl: row 2: scorer 'math' needs field 'reference'"),
        (NO_REFERENCE, ["some_rm", "--scorer", "exact_match"], "a reward model directory or --scorer, not both"),
        (NO_REFERENCE, [], "reward-eval needs a reward model directory or --scorer"),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, second, args, message):
    data = _pairs(tmp_path / "p.jsonl", [ROWS[0], second])
    assert main(["reward-eval", *args, "--data", data, "--output-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o" / "results.json").exists()
