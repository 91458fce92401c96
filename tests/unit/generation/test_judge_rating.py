"""Issue 31 item 3: single-answer judge grades over HTTP, one parser with eval's judge tasks, and
a reply naming no grade (or a failed request) recorded per row by `posttrain score`, where it was
a TypeError."""

import json
import math

import pytest

from posttrain.cli import main
from posttrain.generation.judge import HTTPJudge
from posttrain.generation.judge_parsing import Rating, parse_rating
from posttrain.rewards.judge import GRADES
from tests.integration.conftest import write_jsonl
from tests.unit.eval.fakes import json_server


def _reply(content, tokens=None):
    logprobs = {"content": tokens} if tokens is not None else None
    return {"choices": [{"message": {"content": content}, "finish_reason": "stop", "logprobs": logprobs}]}


def _token(text, top):
    return {
        "token": text,
        "logprob": math.log(max(top.values())),
        "top_logprobs": [{"token": t, "logprob": math.log(p)} for t, p in top.items()],
    }


REPLIES = {
    "bracketed": _reply("The answer is fine. Rating: [[7]]"),
    "one token": _reply("7", [_token("7", {"7": 0.5, "8": 0.25, "x": 0.25})]),
    "ten in two tokens": _reply("10", [_token("1", {"1": 0.9, "2": 0.1}), _token("0", {"0": 1.0})]),
    "no grade": _reply("I like it a lot."),
    "empty": {"choices": []},
}


def _judge_server(body, headers):
    key = (
        next(k for k in REPLIES if f"<{k}>" in body["messages"][-1]["content"])
        if "<" in body["messages"][-1]["content"]
        else "fail"
    )
    if key == "fail":
        return 500, {"error": "judge down"}
    assert body["logprobs"] is True and body["top_logprobs"] == 10 and body["max_tokens"] >= 8
    return 200, REPLIES[key]


def test_http_ratings_from_logprobs_text_or_a_reason():
    with json_server(_judge_server) as url:
        judge = HTTPJudge(url, max_retries=0)
        ratings = judge.rate([f"<{k}>" for k in REPLIES] + ["down"], GRADES)
    by_name = dict(zip([*REPLIES, "down"], ratings))
    assert by_name["bracketed"] == Rating(7.0)
    # 7 * 0.5 + 8 * 0.25 renormalised over the grades (x is not one): (3.5 + 2) / 0.75
    assert by_name["one token"].value == pytest.approx((3.5 + 2.0) / 0.75)
    assert by_name["ten in two tokens"] == Rating(10.0)  # its first token "1" is not the whole reply
    assert by_name["no grade"].value is None and "unparsed judge reply" in by_name["no grade"].problem
    assert by_name["empty"].value is None and "unparsed" in by_name["empty"].problem
    assert by_name["down"].value is None and "judge request failed" in by_name["down"].problem


def test_bare_number_replies_parse_for_both_commands():
    assert parse_rating("8") == 8.0 and parse_rating(" 6. ") == 6.0 and parse_rating("12") is None
    assert parse_rating("8 apples and 3 pears") is None


def test_score_records_unparsed_judge_replies_per_row(tmp_path, capsys):
    rows = [
        {"prompt": "q1", "completions": [{"text": "<bracketed>"}, {"text": "<no grade>"}]},
        {"prompt": "q2", "completions": [{"text": "<one token>"}, {"text": "<empty>"}]},
    ]
    data = write_jsonl(tmp_path / "s.jsonl", rows)
    with json_server(_judge_server) as url:
        status = main(
            [
                "score",
                "--data",
                str(data),
                "--out",
                str(tmp_path / "scored.jsonl"),
                "--scorer",
                f"judge:model={url}",
                "--pairs",
                "best-worst",
                "--quiet",
            ]
        )
    out = capsys.readouterr()
    assert status == 0 and "Traceback" not in out.err
    scored = [json.loads(line) for line in (tmp_path / "scored.jsonl").read_text().splitlines()]
    first, second = scored[0]["completions"]
    assert first["score"] == 7.0 and "unscored" not in first
    assert second["score"] is None and second["scores"] == {"judge": None} and second["correct"] is False
    assert "unparsed judge reply" in second["unscored"]["judge"]
    manifest = json.loads((tmp_path / "scored.manifest.json").read_text())
    assert manifest["counts"]["completions_unscored"] == 2 and len(manifest["warnings"]) == 1
    assert "2 of 4 completions have no score" in out.out
    pairs = json.loads((tmp_path / "scored.pairs.manifest.json").read_text())
    assert pairs["counts"]["too_few"] == 2 and pairs["counts"]["pairs"] == 0  # an unscored one is no rejected
