"""OpenAIClient's retry policy on a mocked transport: what is retried, how long it waits, what fails
at once, and what the failure message says."""

import httpx
import pytest

from posttrain.generation.openai_backend import HTTPFailure, OpenAIClient


def client_with(handler, **kw):
    client = OpenAIClient("http://test/v1", **kw)
    client._client = httpx.Client(transport=httpx.MockTransport(handler))
    return client


def test_backoff_is_exponential_capped_and_jittered():
    client = OpenAIClient("http://test/v1", backoff_s=0.5, max_backoff_s=3.0)
    for attempt, full in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 3.0), (6, 3.0)]:
        delays = [client._delay(attempt, None) for _ in range(200)]
        assert all(full * 0.5 <= d <= full for d in delays) and len(set(delays)) > 100
    assert client._delay(2, 0.25) == 0.25 and client._delay(0, 60.0) <= 0.5  # Retry-After when short


def test_retries_429_and_5xx_then_succeeds_but_a_400_fails_at_once(monkeypatch):
    monkeypatch.setattr("time.sleep", lambda s: None)
    answers = iter([httpx.Response(429), httpx.Response(503), httpx.Response(200, json={"ok": 1})])
    assert client_with(lambda request: next(answers), max_retries=2).post("/x", {}) == {"ok": 1}
    seen = []

    def bad_request(request):
        seen.append(request)
        return httpx.Response(400, text="no such model")

    with pytest.raises(HTTPFailure, match=r"POST http://test/v1/x: 1 attempt: HTTP 400: no such model"):
        client_with(bad_request, max_retries=3).post("/x", {})
    assert len(seen) == 1


def test_connection_errors_are_retried_and_reported(monkeypatch):
    monkeypatch.setattr("time.sleep", lambda s: None)

    def refuse(request):
        raise httpx.ConnectError("refused")

    with pytest.raises(HTTPFailure, match=r"3 attempts: ConnectError: refused; ConnectError"):
        client_with(refuse, max_retries=2).get("/models")
