"""HPT: each sample climbs the five levels until one solves it; levels 4 and 5 ask twice; the
HP-score is the solving level, or the last level plus the penalty."""

import math

import pytest

from posttrain.eval.engine import run_task
from posttrain.eval.prompting import COT_TRIGGER
from posttrain.eval.tasks.builtin import resolve_task
from posttrain.eval.tasks.documents import load_documents
from tests.unit.eval.fakes import ScriptedBackend


def _level(prompt: str) -> str:
    if "Do not solve this yet" in prompt:
        return "4a"
    if "Sub-questions:" in prompt:
        return "4b"
    if "Write down facts" in prompt:
        return "5a"
    if "Knowledge:" in prompt:
        return "5b"
    if prompt.count("<|start_header_id|>user") == 4:
        return "3"
    if COT_TRIGGER in prompt:
        return "2"
    assert "You are an expert problem solver." in prompt
    return "1"


def test_hp_score_is_the_first_solving_level(tiny_model):
    _, tokenizer = tiny_model
    task = resolve_task("hpt_arithmetic", ["unsolved_penalty=1.5"])
    docs, _ = load_documents(task, limit=4)
    solves_at = {docs[0]["prompt"]: "1", docs[1]["prompt"]: "3", docs[2]["prompt"]: "5b"}  # docs[3]: never
    asked = []

    def answer(prompt):
        level = _level(prompt)
        question = prompt.rsplit("<|start_header_id|>user<|end_header_id|>\n\n", 1)[1]
        doc = next(d for d in docs if d["prompt"] in question)
        asked.append((level, doc["_id"]))
        return f"The answer is {doc['reference']}." if solves_at.get(doc["prompt"]) == level else "The answer is -1."

    result = run_task(task, ScriptedBackend(tokenizer, answer=answer), limit=4)
    assert [s.scores["hp_score"] for s in result.samples] == [1.0, 3.0, 5.0, 6.5]
    assert result.values() == {"hp_score": pytest.approx((1 + 3 + 5 + 6.5) / 4), "solved": 0.75}
    assert sorted(asked) == sorted(
        [("1", i) for i in range(4)]
        + [("2", i) for i in (1, 2, 3)]
        + [("3", i) for i in (1, 2, 3)]
        + [(s, i) for s in ("4a", "4b", "5a", "5b") for i in (2, 3)]
    )
    assert result.samples[3].extra["levels"].keys() == {"1", "2", "3", "4", "5"}


def _summary_task(tmp_path, *overrides):
    rows = tmp_path / "sum.jsonl"
    rows.write_text(
        '{"document": "doc zero", "summary": "the cat sat on the mat"}\n'
        '{"document": "doc one", "summary": "a dog ran fast home"}\n'
        '{"document": "doc two", "summary": "rain fell all day"}\n'
    )
    return resolve_task(
        {
            "name": "hpt_summary",
            "kind": "hpt",
            "format": "summary",
            "data": str(rows),
            "extract": "text",
            "levels": [1, 2],
            "template": "Summarise: {prompt}",
        },
        list(overrides),
    )


def test_a_text_metric_with_a_threshold_solves(tiny_model, tmp_path):
    """rouge1 >= 0.6. doc zero: level 1 repeats the summary (F 1.0). doc one: level 1 says "a dog"
    (P 1, R 2/5: F 0.571, below), level 2 "a dog ran" (P 1, R 3/5: F 0.75). doc two: "zebra" (F 0)
    at both levels: unsolved, 2 + 1 = 3."""
    _, tokenizer = tiny_model
    answers = {("doc zero", "1"): "the cat sat on the mat", ("doc one", "1"): "a dog", ("doc one", "2"): "a dog ran"}

    def answer(prompt):
        doc = next(d for d in ("doc zero", "doc one", "doc two") if f"Summarise: {d}" in prompt)
        return answers.get((doc, _level(prompt)), "zebra")

    result = run_task(
        _summary_task(tmp_path, "metric=rouge1", "threshold=0.6"), ScriptedBackend(tokenizer, answer=answer)
    )
    assert [s.scores["hp_score"] for s in result.samples] == [1.0, 2.0, 3.0]
    assert result.samples[1].extra["level_scores"] == {"1": pytest.approx(2 * 0.4 / 1.4), "2": pytest.approx(0.75)}
    # sentence BLEU (sacrebleu, 0-100) >= 50: every n-gram of "a dog" / "a dog ran" is in the
    # reference, so BLEU = 100 * brevity penalty exp(1 - 5/len): 22.3 (2 words), 51.3 (3 words)
    result = run_task(_summary_task(tmp_path, "metric=bleu", "threshold=50"), ScriptedBackend(tokenizer, answer=answer))
    assert [s.scores["hp_score"] for s in result.samples] == [1.0, 2.0, 3.0]
    assert result.samples[1].extra["level_scores"] == {
        "1": pytest.approx(100 * math.exp(1 - 5 / 2)),
        "2": pytest.approx(100 * math.exp(1 - 5 / 3)),
    }


@pytest.mark.parametrize(
    "overrides, problem", [(["metric=rougeL"], "set threshold"), (["threshold=0.5"], "not exact_match")]
)
def test_threshold_goes_with_a_text_metric(tmp_path, overrides, problem):
    from posttrain.errors import UserError

    with pytest.raises(UserError, match=problem) as err:  # when the task is read, before any model time
        _summary_task(tmp_path, *overrides)
    assert "Value error" not in str(err.value) and "\n" not in str(err.value)  # one clean line
