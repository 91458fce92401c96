"""`posttrain sample --backend openai` against a scripted server that answers 429, 500, hangs or
closes the connection on a request's first attempt, and one prompt that always fails: the output
is complete and duplicate-free, the lasting failure is in the manifest and the exit status, and a
rerun against the healed server fills the gap without redoing the rest. The API key goes nowhere."""

import asyncio
import json
import socket
import threading
import time
from collections import Counter

import pytest

from posttrain.cli import main
from tests.integration.conftest import write_jsonl

KINDS = ["ok", "429", "500", "hang", "close", "ok", "dead", "ok"]


class ScriptedServer:
    def __init__(self):
        self.attempts: Counter = Counter()
        self.auth: set = set()
        self.healed = False

    async def __call__(self, scope, receive, send):
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.auth.add(dict(scope["headers"]).get(b"authorization"))
        if scope["path"].endswith("/models"):
            return await self._json(send, 200, {"data": [{"id": "scripted"}]})
        request = json.loads(body)
        content = request["messages"][-1]["content"]
        key = (content, request["seed"])
        self.attempts[key] += 1
        first, kind = self.attempts[key] == 1, content.split("-")[0]
        if kind == "dead" and not self.healed:
            return await self._json(send, 500, {"error": "down"})
        if first and kind in ("429", "500"):
            return await self._json(send, int(kind), {"error": kind}, [(b"retry-after", b"0")])
        if first and kind == "hang":
            await asyncio.sleep(2.0)  # past the client's timeout
        if first and kind == "close":  # headers promise more than is sent, then the connection closes
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"500")]})
            return await send({"type": "http.response.body", "body": b'{"choi', "more_body": False})
        reply = {
            "choices": [
                {
                    "message": {"content": f"echo {content} {request['seed']}"},
                    "finish_reason": "stop",
                    "logprobs": {"content": [{"token": "e", "logprob": -0.5}, {"token": "o", "logprob": -0.25}]},
                }
            ],
            "usage": {"completion_tokens": 2},
        }
        await self._json(send, 200, reply)

    @staticmethod
    async def _json(send, status, payload, headers=()):
        data = json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), *headers],
            }
        )
        await send({"type": "http.response.body", "body": data})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def scripted():
    import uvicorn

    app, port = ScriptedServer(), free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield app, f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(timeout=10)


def test_faults_are_retried_lasting_failures_recorded_and_rerun_fills_the_gap(scripted, tmp_path, monkeypatch, capsys):
    app, url = scripted
    monkeypatch.setenv("H10_TEST_KEY", "sekrit-key-123")
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": f"{kind}-{i}", "id": i} for i, kind in enumerate(KINDS)])
    out = tmp_path / "out.jsonl"
    args = [
        "sample",
        "scripted",
        "--prompts",
        str(prompts),
        "--out",
        str(out),
        "--backend",
        "openai",
        "--base-url",
        url,
        "--api-key-env",
        "H10_TEST_KEY",
        "--n",
        "2",
        "--batch-size",
        "2",
        "--timeout",
        "0.5",
        "--max-retries",
        "2",
        "--concurrency",
        "4",
        "--quiet",
    ]
    assert main(args) == 1
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [0, 1, 2, 3, 4, 5, 7]  # everything but the dead prompt, once
    assert all(
        len(r["completions"]) == 2 and r["completions"][0]["text"].startswith(f"echo {r['prompt']}") for r in rows
    )
    assert rows[0]["completions"][0]["logprob"] == -0.75 and rows[0]["completions"][0]["num_tokens"] == 2
    manifest = json.loads((tmp_path / "out.manifest.json").read_text())
    assert manifest["counts"]["failed"] == 1 and manifest["failures"][0]["row"] == 7
    assert "3 attempts" in manifest["failures"][0]["error"] and "HTTP 500" in manifest["failures"][0]["error"]
    for kind in ("429", "500", "hang", "close"):  # failed once, then answered
        assert {v for (content, _), v in app.attempts.items() if content.startswith(kind)} == {2}
    before = Counter(app.attempts)

    app.healed = True
    assert main(args) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == list(range(len(KINDS)))
    redone = {content for content in (app.attempts - before)}
    assert {c for c, _ in redone} == {"ok-7", "dead-6"}  # only the batch with the failure was redone
    written = out.read_text() + (tmp_path / "out.manifest.json").read_text() + str(capsys.readouterr())
    assert app.auth == {b"Bearer sekrit-key-123"} and "sekrit" not in written


def test_unreachable_server_is_one_line_naming_the_url(tmp_path, capsys):
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "hi"}])
    url = f"http://127.0.0.1:{free_port()}/v1"
    code = main(
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
            "--max-retries",
            "1",
            "--quiet",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"posttrain: error: cannot reach {url}: GET {url}/models: 2 attempts: ConnectError")
