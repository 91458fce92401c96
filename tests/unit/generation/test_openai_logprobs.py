"""Issue 31 item 1: log-probs are requested as each endpoint needs, checked, and a server that
returns none is warned about once and counted, never silently null."""

import json
import logging
import math

import pytest

from posttrain.cli import main
from posttrain.generation.backend import GenerationRequest
from posttrain.generation.openai_backend import OpenAIBackend, OpenAIClient
from posttrain.generation.openai_replies import completion_logprob
from tests.integration.conftest import write_jsonl
from tests.unit.eval.fakes import json_server


def _chat_choice(logprobs):
    return {"message": {"content": "ok"}, "finish_reason": "stop", "logprobs": logprobs}


@pytest.mark.parametrize(
    "logprobs, expected",
    [
        ({"content": [{"token": "a", "logprob": -0.5}, {"token": "b", "logprob": -1.25}]}, (-1.75, None)),
        ({"content": [{"token": "a", "logprob": 0.0}]}, (0.0, None)),
        (None, (None, "missing")),
        ({"content": []}, (None, "missing")),
        ({"content": None}, (None, "missing")),
        ({"content": [{"token": "a", "logprob": 2.0}]}, (None, "malformed")),
        ({"content": [{"token": "a", "logprob": "x"}]}, (None, "malformed")),
        ({"content": [{"token": "a", "logprob": float("nan")}]}, (None, "malformed")),
        ({"content": [{"token": "a"}]}, (None, "malformed")),
    ],
)
def test_chat_logprob_sum_and_problems(logprobs, expected):
    assert completion_logprob(_chat_choice(logprobs), chat=True) == expected


def test_completions_logprob_sum():
    choice = {"text": "x", "logprobs": {"tokens": ["a", "b"], "token_logprobs": [-0.25, -2.0]}}
    assert completion_logprob(choice, chat=False) == (-2.25, None)
    assert completion_logprob({"text": "x", "logprobs": {"token_logprobs": [None]}}, chat=False) == (None, "malformed")
    # llama.cpp's empty completion (end of text first) lists no tokens: a sum over none, not "missing"
    assert completion_logprob({"text": "", "logprobs": {"tokens": [], "token_logprobs": []}}, chat=False) == (0.0, None)
    assert completion_logprob({"text": "x", "logprobs": {"tokens": [], "token_logprobs": []}}, chat=False) == (
        None,
        "missing",
    )


class Recorder:
    """Records each request body; answers with log-probs only when `with_logprobs`."""

    def __init__(self, with_logprobs: bool):
        self.bodies, self.with_logprobs = [], with_logprobs

    def __call__(self, body, headers):
        self.bodies.append(body)
        lp = [{"token": "o", "logprob": -0.5}, {"token": "k", "logprob": -0.25}]
        if "messages" in body:
            choice = {
                "message": {"content": "ok"},
                "finish_reason": "stop",
                **({"logprobs": {"content": lp}} if self.with_logprobs else {"logprobs": None}),
            }
        else:
            choice = {
                "text": "ok",
                "finish_reason": "length",
                **({"logprobs": {"tokens": ["o", "k"], "token_logprobs": [-0.5, -0.25]}} if self.with_logprobs else {}),
            }
        return 200, {"choices": [choice], "usage": {"completion_tokens": 2}}


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_each_endpoint_is_asked_for_logprobs_its_way(endpoint):
    server = Recorder(with_logprobs=True)
    request = GenerationRequest([], 5, messages=({"role": "user", "content": "hi"},), text="hi")
    with json_server(server) as url:
        backend = OpenAIBackend("m", OpenAIClient(url), endpoint)
        [done] = backend.complete([request], logprobs=True)
    body = server.bodies[0]
    if endpoint == "chat":
        assert body["logprobs"] is True and body["top_logprobs"] == 1  # llama.cpp needs top_logprobs
    else:
        assert body["logprobs"] == 1 and "top_logprobs" not in body and body["prompt"] == "hi"
    assert done.logprob == pytest.approx(-0.75) and not backend.logprob_problems


def test_no_logprobs_requested_sends_none():
    server = Recorder(with_logprobs=True)
    with json_server(server) as url:
        OpenAIBackend("m", OpenAIClient(url), "chat").complete(
            [GenerationRequest([], 5, messages=({"role": "user", "content": "hi"},))]
        )
    assert "logprobs" not in server.bodies[0] and "top_logprobs" not in server.bodies[0]


def test_a_server_without_logprobs_warns_once_and_the_manifest_counts_it(tmp_path, caplog, capsys):
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": f"q{i}"} for i in range(3)])
    caplog.set_level(logging.WARNING)
    with json_server(Recorder(with_logprobs=False)) as url:
        status = main(
            [
                "sample",
                "m",
                "--prompts",
                str(prompts),
                "--out",
                str(tmp_path / "o.jsonl"),
                "--n",
                "2",
                "--backend",
                "openai",
                "--base-url",
                url,
                "--quiet",
            ]
        )
    assert status == 0
    rows = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(c["logprob"] is None for r in rows for c in r["completions"])
    manifest = json.loads((tmp_path / "o.manifest.json").read_text())
    assert manifest["counts"]["completions_without_logprob"] == 6 and manifest["counts"]["failed"] == 0
    assert len(manifest["warnings"]) == 1 and "6 of 6 completions have no log-prob" in manifest["warnings"][0]
    assert sum("log-probs for a completion" in r.getMessage() for r in caplog.records) == 1
    assert "warning: 6 of 6" in capsys.readouterr().out


def test_with_logprobs_the_manifest_has_no_warning(tmp_path):
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "q"}])
    with json_server(Recorder(with_logprobs=True)) as url:
        assert (
            main(
                [
                    "sample",
                    "m",
                    "--prompts",
                    str(prompts),
                    "--out",
                    str(tmp_path / "o.jsonl"),
                    "--backend",
                    "openai",
                    "--base-url",
                    url,
                    "--quiet",
                ]
            )
            == 0
        )
    manifest = json.loads((tmp_path / "o.manifest.json").read_text())
    assert manifest["counts"]["completions_without_logprob"] == 0 and manifest["warnings"] == []
    row = json.loads((tmp_path / "o.jsonl").read_text())
    assert math.isclose(row["completions"][0]["logprob"], -0.75)
