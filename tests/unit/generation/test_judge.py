"""Pairwise judging cancels position bias by asking in both orders; judges can be a local model
(log-probs of the labels) or an OpenAI-compatible endpoint (here a tiny local server)."""

import json
import math

import pytest

from posttrain.errors import UserError
from posttrain.eval.engine import run_task
from posttrain.eval.tasks.builtin import resolve_task
from posttrain.generation.backend import HFBackend
from posttrain.generation.judge import HTTPJudge, LocalJudge, load_template
from tests.unit.eval.fakes import FixedJudge, ScriptedBackend, json_server


@pytest.fixture()
def alpaca_file(tmp_path):
    path = tmp_path / "alpaca_eval.json"
    path.write_text(json.dumps([{"instruction": f"Task {i}", "output": "short", "generator": "ref"} for i in range(4)]))
    return path


def _run(tokenizer, data, answer, judge, *overrides):
    task = resolve_task("alpaca_eval", [f"data={data}", *overrides])
    return run_task(task, ScriptedBackend(tokenizer, answer=answer), judge=judge)


def test_a_fair_judge_and_a_position_biased_one(tiny_model, alpaca_file):
    _, tokenizer = tiny_model
    longer_wins = FixedJudge(lambda a, b: 0.9 if len(a) > len(b) else 0.1)
    result = _run(tokenizer, alpaca_file, lambda p: "a much longer answer", longer_wins)
    assert result.values()["win_rate"] == 1.0 and result.values()["tie_rate"] == 0.0
    assert result.values()["preference"] == pytest.approx(0.9)
    assert len(longer_wins.prompts) == 8  # every instruction in both orders
    first_wins = FixedJudge(lambda a, b: 1.0)  # always picks response A: pure position bias
    result = _run(tokenizer, alpaca_file, lambda p: "anything", first_wins)
    assert result.values()["win_rate"] == 0.5 and result.values()["tie_rate"] == 1.0
    assert result.values()["preference"] == pytest.approx(0.5)


def test_judge_template_is_replaceable(tmp_path):
    path = tmp_path / "judge.txt"
    path.write_text("Q: {instruction}\n1: {output_a}\n2: {output_b}\nBetter (A/B)?")
    assert load_template(str(path), "default", ("instruction", "output_a", "output_b")).startswith("Q: ")
    with pytest.raises(UserError, match=r"lacks \{output_b\}"):
        load_template("Q: {instruction} {output_a}", "default", ("instruction", "output_a", "output_b"))


def test_local_model_judge(tiny_model, alpaca_file):
    model, tokenizer = tiny_model
    backend = HFBackend(model, tokenizer, batch_size=4, show_progress=False)
    judge = LocalJudge(backend)
    probs = judge.choose(["Which is better? A or B", "Another question"], ["A", "B"])
    assert all(abs(sum(p) - 1) < 1e-6 and p[0] != 0.5 for p in probs)
    result = run_task(resolve_task("alpaca_eval", [f"data={alpaca_file}", "max_new_tokens=8"]), backend, judge=judge)
    assert {s.scores["win_rate"] for s in result.samples} <= {0.0, 0.5, 1.0}
    assert 0 <= result.values()["lc_win_rate"] <= 1


class _Endpoint:
    """Answers chat completions: 'logprobs' mode gives top log-probs, 'text' mode only a message,
    'error' a 500; `seen` records each request's body and Authorization header."""

    mode = "logprobs"
    seen: list = []

    @classmethod
    def reply(cls, body: dict, headers: dict) -> tuple[int, dict | None]:
        cls.seen.append((body, headers.get("Authorization")))
        if cls.mode == "error":
            return 500, None
        choice = {"message": {"content": "B. Response B is better."}}
        if cls.mode == "logprobs":
            top = [
                {"token": "A", "logprob": math.log(0.3)},
                {"token": " B", "logprob": math.log(0.6)},
                {"token": "The", "logprob": math.log(0.1)},
            ]
            choice["logprobs"] = {"content": [{"token": "B", "logprob": math.log(0.6), "top_logprobs": top}]}
        return 200, {"choices": [choice]}


@pytest.fixture()
def endpoint():
    _Endpoint.seen = []
    with json_server(_Endpoint.reply) as url:
        yield url


def test_http_judge(endpoint, monkeypatch):
    monkeypatch.setenv("TEST_JUDGE_KEY", "secret")
    judge = HTTPJudge(endpoint, api_model="judge-1", api_key_env="TEST_JUDGE_KEY", timeout_s=5, max_retries=1)
    _Endpoint.mode = "logprobs"
    assert judge.choose(["Which?"], ["A", "B"])[0] == pytest.approx([1 / 3, 2 / 3])
    body, auth = _Endpoint.seen[0]
    assert body["model"] == "judge-1" and body["messages"][0]["content"] == "Which?" and auth == "Bearer secret"
    _Endpoint.mode = "text"
    assert judge.choose(["Which?"], ["A", "B"]) == [[0.0, 1.0]]
    assert judge.choose(["Which?"], ["Yes", "No"]) == [None]  # the answer names no label: no answer
    _Endpoint.mode = "error"
    with pytest.raises(UserError, match="judge endpoint"):
        judge.choose(["Which?"], ["A", "B"])


def test_refusal_judge_classifier(tiny_model, tmp_path):
    _, tokenizer = tiny_model
    rows = tmp_path / "harmful.jsonl"
    rows.write_text('{"prompt": "bad 1"}\n{"prompt": "bad 2"}\n')

    class RefusalJudge:
        def choose(self, prompts, labels):
            assert list(labels) == ["Yes", "No"]
            return [[0.8, 0.2] if "nope" in p else [0.1, 0.9] for p in prompts]

    backend = ScriptedBackend(tokenizer, answer=lambda p: "nope" if "bad 1" in p else "ok, here")
    task = resolve_task("refusal", [f"data={rows}", "classifier=judge"])
    assert run_task(task, backend, judge=RefusalJudge()).values() == {"refusal_rate": 0.5, "judge_failures": 0.0}


class SilentOn:
    """A judge that gives no answer for prompts containing `word`, else prefers response A."""

    def __init__(self, word):
        self.word = word

    def choose(self, prompts, labels):
        return [None if self.word in p else [1.0] + [0.0] * (len(labels) - 1) for p in prompts]


def test_a_judge_without_an_answer_is_a_failure_not_a_tie(tiny_model, alpaca_file, tmp_path):
    """Instructions 0-3; the judge says nothing on Task 3. The other three, judged in both orders by
    an always-A judge, are ties (win 0.5 each); Task 3 is left out and counted, so win_rate is 0.5
    over 3 items with 1 failure. Were it a tie as before, the count would hide in tie_rate 4/4."""
    _, tokenizer = tiny_model
    result = _run(tokenizer, alpaca_file, lambda p: "answer", SilentOn("Task 3"))
    assert result.values()["judge_failures"] == 1.0 and result.metrics["judge_failures"]["stderr"] is None
    assert [s.scores.get("win_rate") for s in result.samples] == [0.5, 0.5, 0.5, None]
    assert result.values()["win_rate"] == 0.5 and result.values()["tie_rate"] == 1.0
    longer_wins = FixedJudge(lambda a, b: 0.9 if len(a) > len(b) else 0.1)

    class LongerWinsButSilent(SilentOn):
        def choose(self, prompts, labels):
            return [None if self.word in p else row for p, row in zip(prompts, longer_wins.choose(prompts, labels))]

    result = _run(tokenizer, alpaca_file, lambda p: "a much longer answer", LongerWinsButSilent("Task 0"))
    assert result.values()["win_rate"] == 1.0 and result.values()["judge_failures"] == 1.0
    assert 0 <= result.values()["lc_win_rate"] <= 1  # fitted on the three judged items

    rows = tmp_path / "harmful.jsonl"
    rows.write_text('{"prompt": "bad 1"}\n{"prompt": "bad 2"}\n')
    task = resolve_task("refusal", [f"data={rows}", "classifier=judge"])
    values = run_task(task, ScriptedBackend(tokenizer, answer=lambda p: "ok"), judge=SilentOn("bad 2")).values()
    assert values == {"refusal_rate": 1.0, "judge_failures": 1.0}  # "bad 1": Yes (label 0); "bad 2": no verdict
