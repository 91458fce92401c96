"""The serve app in-process (Starlette's TestClient, the real tiny model): an exception inside a
handler is that request's 500 error object and the next request is served; a request timeout cancels
the job with a 504 error object."""

import pytest
from starlette.testclient import TestClient

from posttrain.generation.server.app import build_app

BODY = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "temperature": 0}


@pytest.fixture(scope="module")
def backend(tiny_dir):
    from posttrain.generation.factory import make_backend

    b = make_backend(str(tiny_dir), "hf", 4, 0, "float32")
    b.show_progress = False
    return b


def test_a_failing_handler_answers_500_and_the_app_keeps_serving(backend, monkeypatch):
    app = build_app(backend, ["tiny"])
    client = TestClient(app, raise_server_exceptions=True)  # a re-raised exception would fail the test

    def broken(messages):
        raise RuntimeError("template exploded")

    server = app.state.server
    with monkeypatch.context() as patch:
        patch.setattr(server.prompter, "encode", broken)
        reply = client.post("/v1/chat/completions", json=BODY)
    assert reply.status_code == 500
    assert reply.json()["error"] == {
        "message": "internal error: RuntimeError: template exploded",
        "type": "server_error",
        "param": None,
        "code": "internal_error",
    }
    assert client.post("/v1/chat/completions", json=BODY).status_code == 200


def test_a_request_past_its_timeout_is_cancelled_with_504(backend):
    app = build_app(backend, ["tiny"], timeout_s=1e-9)
    client = TestClient(app)
    reply = client.post("/v1/chat/completions", json={**BODY, "max_tokens": 200})
    assert reply.status_code == 504 and reply.json()["error"]["code"] == "timeout"
    app.state.server.timeout_s = 600  # the next request waits behind the abandoned one, then is served
    assert client.post("/v1/chat/completions", json=BODY).status_code == 200
