"""pass@k, maj@k and best-of-k: the estimator by hand, the votes on a scripted backend whose
answers are known, the curve in results.json, and the one-line errors."""

import json
import math

import pytest

from posttrain.errors import UserError
from posttrain.eval.engine import run_task
from posttrain.eval.tasks.builtin import resolve_task
from posttrain.eval.voting import (
    VotingOptions,
    check_options,
    correctness_rule,
    default_ks,
    majority_index,
    pass_at_k,
)
from tests.unit.eval.fakes import ScriptedBackend


def test_pass_at_k_by_hand():
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - math.comb(3, 2) / math.comb(5, 2))  # 0.7
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)
    assert pass_at_k(5, 2, 1) == pytest.approx(2 / 5)
    assert pass_at_k(5, 0, 3) == 0.0 and pass_at_k(5, 3, 3) == 1.0  # n - c < k: always a correct one
    assert pass_at_k(200, 13, 10) == pytest.approx(1 - math.comb(187, 10) / math.comb(200, 10))


def test_majority_index_ties_and_missing():
    assert majority_index(["3", "4", "4", "3"]) == 0  # tie: the answer seen first
    assert majority_index([None, "5", None, "5", "6"]) == 1
    assert majority_index([None, None]) is None


def test_default_ks_and_bad_k():
    assert default_ks(8) == (1, 2, 4, 8) and default_ks(6) == (1, 2, 4, 6) and default_ks(1) == (1,)
    with pytest.raises(UserError, match="--k 8"):
        check_options(VotingOptions(4, (1, 8)))


KNOWN_SCORES = {
    "The answer is 2.": 0.1,
    "The answer is 3.": 0.9,
    "The answer is 5.": 0.0,
    "The answer is 4.": 0.2,
    "The answer is 7.": 0.5,
}


def known_score(sample: dict, completion: str) -> float:
    """A best-of scorer named by dotted path: prefers some wrong answers, so its pick is visible."""
    return KNOWN_SCORES[completion]


def _cycling_answers(per_doc: dict[str, list[str]]):
    """A scripted answer function: the i-th request for a question gets its list's i-th answer."""
    seen: dict[str, int] = {}

    def answer(prompt: str) -> str:
        question = next(q for q in per_doc if q in prompt)
        i = seen.get(question, 0)
        seen[question] = i + 1
        return per_doc[question][i]

    return answer


def test_votes_on_known_answers(tiny_model, tmp_path):
    _, tokenizer = tiny_model
    rows = tmp_path / "qa.jsonl"
    rows.write_text('{"prompt": "What is 1+1?", "reference": "2"}\n{"prompt": "What is 2+2?", "reference": "4"}\n')
    # doc 1: 1 right of 4, wrong answers agree (maj wrong); doc 2: 3 right of 4 (maj right from k=1)
    answers = {
        "1+1": ["The answer is 2.", "The answer is 3.", "The answer is 3.", "The answer is 5."],
        "2+2": ["The answer is 4.", "The answer is 7.", "The answer is 4.", "The answer is 4."],
    }
    backend = ScriptedBackend(tokenizer, answer=_cycling_answers(answers))
    task = resolve_task("generation", [f"data={rows}", "extract=final_number"])
    options = VotingOptions(4, temperature=0.7, scorer="tests.unit.eval.test_voting:known_score")
    result = run_task(task, backend, voting=options)  # the scorer through the rewards registry
    assert all(r.temperature == 0.7 for r in backend.generated) and len(backend.generated) == 8
    samples = result.samples
    first, second = samples[0].scores, samples[1].scores
    assert first["pass@1"] == pytest.approx(1 / 4) and first["pass@2"] == pytest.approx(1 - 3 / 6)
    assert first["pass@4"] == 1.0 and second["pass@2"] == 1.0 and second["pass@1"] == pytest.approx(3 / 4)
    assert [first[f"maj@{k}"] for k in (1, 2, 4)] == [1.0, 1.0, 0.0]  # k=2: tie 2 vs 3, first seen wins
    assert [second[f"maj@{k}"] for k in (1, 2, 4)] == [1.0, 1.0, 1.0]
    assert [first[f"best_of@{k}"] for k in (1, 2, 4)] == [1.0, 0.0, 0.0]  # the scorer prefers "3"
    assert [second[f"best_of@{k}"] for k in (1, 2, 4)] == [1.0, 0.0, 0.0]  # ... and "7"
    assert samples[0].extra["correct"] == [True, False, False, False]
    assert result.curve["k"] == [1, 2, 4]
    assert result.curve["pass@k"] == pytest.approx([(0.25 + 0.75) / 2, (0.5 + 1) / 2, 1.0])
    assert result.curve["best_of@k"] == pytest.approx([1.0, 0.0, 0.0])


def test_greedy_and_non_generation_tasks_are_refused(tiny_model):
    _, tokenizer = tiny_model
    backend = ScriptedBackend(tokenizer)
    with pytest.raises(UserError, match="temperature 0"):
        run_task(resolve_task("arithmetic"), backend, limit=1, voting=VotingOptions(2))
    with pytest.raises(UserError, match="generation tasks"):
        correctness_rule(resolve_task("boolq"))
    with pytest.raises(UserError, match="exact_match or countdown"):
        correctness_rule(resolve_task("summarisation"))


def test_cli_n_below_k_is_one_line(capsys):
    from posttrain.cli import main

    assert main(["eval", "tiny", "--tasks", "arithmetic", "--samples", "2", "--k", "1,4"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("posttrain: error: --k 4") and "\n" not in err
    assert main(["eval", "tiny", "--tasks", "arithmetic", "--k", "1"]) == 2
    assert "--k needs --samples" in capsys.readouterr().err


def test_cli_writes_the_curve_with_the_tiny_model(tiny_dir, tmp_path):
    from posttrain.cli import main

    out = tmp_path / "ev"
    assert (
        main(
            [
                "eval",
                str(tiny_dir),
                "--tasks",
                "arithmetic",
                "--limit",
                "2",
                "--samples",
                "4",
                "--temperature",
                "1.0",
                "--best-of",
                "math",
                "--set",
                "max_new_tokens=4",
                "--output-dir",
                str(out),
            ]
        )
        == 0
    )
    task = json.loads((out / "results.json").read_text())["tasks"]["arithmetic"]
    assert task["curve"]["k"] == [1, 2, 4] and len(task["curve"]["best_of@k"]) == 3
    assert set(task["metrics"]) >= {"pass@4", "maj@2", "best_of@1"}
    outputs = [json.loads(line)["extra"]["outputs"] for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(outputs) == 2 and all(len(o) == 4 for o in outputs)
    assert len({text for o in outputs for text in o}) > 2  # sampled, not four copies of one answer
