"""Malformed requests against a real `posttrain serve` process: each is answered with an OpenAI error
object (status, type, message, the field it names) and a valid request still succeeds after each."""

import httpx
import pytest

from tests.integration.serve_process import serve_process

MODEL = "tiny-test"
USER = [{"role": "user", "content": "hi"}]
CHAT, TEXT = "/chat/completions", "/completions"


def chat(**fields):
    return {"model": MODEL, "messages": USER, "max_tokens": 2, **fields}


def text(**fields):
    return {"model": MODEL, "prompt": "hi", "max_tokens": 2, **fields}


# (case, path, body -- a dict is sent as JSON, bytes as they are, status, the `param` it names)
CASES = [
    ("not JSON", CHAT, b"{not json", 400, None),
    ("a JSON array", CHAT, b"[1, 2]", 400, None),
    ("empty messages", CHAT, chat(messages=[]), 400, "messages"),
    ("message without content", CHAT, chat(messages=[{"role": "user"}]), 400, "messages.0.content"),
    ("bad role", CHAT, chat(messages=[{"role": "wizard", "content": "x"}]), 400, "messages.0.role"),
    ("tool role", CHAT, chat(messages=[{"role": "tool", "content": "x"}]), 400, "messages.0.role"),
    ("image part", CHAT, chat(messages=[{"role": "user", "content": [{"type": "image_url"}]}]), 400, "messages.0"),
    ("missing model", CHAT, {"messages": USER}, 400, "model"),
    ("unknown model", CHAT, chat(model="gpt-4o"), 404, "model"),
    ("max_tokens 0", CHAT, chat(max_tokens=0), 400, "max_tokens"),
    ("negative max_tokens", CHAT, chat(max_tokens=-5), 400, "max_tokens"),
    ("max_completion_tokens 0", CHAT, chat(max_completion_tokens=0), 400, "max_completion_tokens"),
    ("max_tokens a string", CHAT, chat(max_tokens="ten"), 400, "max_tokens"),
    ("n 0", CHAT, chat(n=0), 400, "n"),
    ("n 129", CHAT, chat(n=129), 400, "n"),
    ("n 10**12", CHAT, chat(n=10**12), 400, "n"),
    ("temperature 3", CHAT, chat(temperature=3), 400, "temperature"),
    ("temperature NaN-like", CHAT, chat(temperature="nan"), 400, "temperature"),
    ("top_p 1.5", CHAT, chat(top_p=1.5), 400, "top_p"),
    ("five stop strings", CHAT, chat(stop=["a", "b", "c", "d", "e"]), 400, "stop"),
    ("stop a number", CHAT, chat(stop=5), 400, "stop"),
    ("top_logprobs without logprobs", CHAT, chat(top_logprobs=2), 400, "top_logprobs"),
    ("top_logprobs 21", CHAT, chat(logprobs=True, top_logprobs=21), 400, "top_logprobs"),
    ("top_logprobs -1", CHAT, chat(logprobs=True, top_logprobs=-1), 400, "top_logprobs"),
    ("json_object format", CHAT, chat(response_format={"type": "json_object"}), 400, "response_format"),
    ("unknown format", CHAT, chat(response_format={"type": "xml"}), 400, "response_format.type"),
    ("stream_options without stream", CHAT, chat(stream_options={"include_usage": True}), 400, "stream_options"),
    ("tools", CHAT, chat(tools=[{"type": "function", "function": {"name": "f"}}]), 400, "tools"),
    ("logit_bias", CHAT, chat(logit_bias={"5": 10}), 400, "logit_bias"),
    ("unknown field", CHAT, chat(frobnicate=1), 400, "frobnicate"),
    ("seed a string", CHAT, chat(seed="x"), 400, "seed"),
    ("empty prompt list", TEXT, text(prompt=[]), 400, "prompt"),
    ("negative token id", TEXT, text(prompt=[1, -2]), 400, "prompt"),
    ("token id past the vocabulary", TEXT, text(prompt=[1, 10**9]), 400, "prompt"),
    ("prompt longer than the context", TEXT, text(prompt=[5] * 100_000), 400, "prompt"),
    ("prompt a dict", TEXT, text(prompt={"a": 1}), 400, "prompt"),
    ("n x prompts over 128", TEXT, text(prompt=["a"] * 65, n=2), 400, "n"),
    ("logprobs 21 (completions)", TEXT, text(logprobs=21), 400, "logprobs"),
    ("echo a string", TEXT, text(echo="yes please"), 400, "echo"),
    ("suffix", TEXT, text(suffix="end"), 400, "suffix"),
    ("unknown route", "/embeddings", {"model": MODEL, "input": "x"}, 404, None),
]


@pytest.fixture(scope="module")
def server(tiny_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with serve_process(tiny_dir, log, "--name", MODEL) as url:
        with httpx.Client(base_url=url, timeout=120) as http:
            yield http


@pytest.mark.parametrize("case,path,body,status,param", CASES, ids=[c[0] for c in CASES])
def test_malformed_request_gets_an_error_object_and_the_server_keeps_serving(server, case, path, body, status, param):
    if isinstance(body, bytes):
        reply = server.post(path, content=body, headers={"content-type": "application/json"})
    else:
        reply = server.post(path, json=body)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["message"]
    assert "Traceback" not in error["message"]
    if param is not None:
        assert error["param"] == param, error
    valid = server.post(CHAT, json=chat(seed=-1, temperature=0.7))
    assert valid.status_code == 200 and valid.json()["choices"][0]["message"]["role"] == "assistant"
