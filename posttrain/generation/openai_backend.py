"""Any OpenAI-compatible server (`posttrain serve`, vLLM's server, TGI, a hosted API) as a backend.

OpenAIClient is the one HTTP client of the package (the HTTP judge uses it too), on httpx:
- bounded concurrency: `map` runs at most `concurrency` requests at a time (a thread pool);
- a timeout per request (connect, read, write);
- retries with exponential backoff and jitter on 429, 5xx and connection errors (refused, reset,
  closed without an answer, timed out): attempt k waits min(max_backoff, backoff * 2^k) times a
  random factor in [0.5, 1] (a server's Retry-After, when given and shorter than max_backoff, is
  waited instead), so clients that failed together do not retry together; any other 4xx is a
  mistake in the request and fails at once;
- the API key is read from an environment variable (api_key_env) and only ever put in the
  Authorization header: never printed, logged or written to a manifest.
A request still failing after its retries becomes a RequestFailed (the sampling job records it
and retries it on the next run) instead of stopping the whole job.

OpenAIBackend answers `complete` (and `generate`) requests through /v1/chat/completions (from
the request's messages: the server applies its chat template) or /v1/completions (from the
prompt's token ids, which posttrain serve and vLLM accept).
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tqdm.auto import tqdm

from posttrain.errors import UserError
from posttrain.generation.backend import Completion, GenerationRequest, RequestFailed

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
ENDPOINTS = ("chat", "completions")


class HTTPFailure(Exception):
    """Every attempt of one request failed; the message says what each attempt got."""


class OpenAIClient:
    def __init__(self, base_url: str, api_key_env: str | None = None, timeout_s: float = 60.0,
                 max_retries: int = 4, backoff_s: float = 0.5, max_backoff_s: float = 8.0, concurrency: int = 8):
        import httpx

        if concurrency < 1 or max_retries < 0:
            raise UserError(f"concurrency must be >= 1 and max_retries >= 0, got {concurrency}, {max_retries}")
        self.base_url = base_url.rstrip("/")
        self.max_retries, self.backoff_s, self.max_backoff_s = max_retries, backoff_s, max_backoff_s
        self.concurrency = concurrency
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(api_key_env, "") if api_key_env else ""
        if api_key_env and not key:
            raise UserError(f"api_key_env names ${api_key_env}, which is not set")
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._httpx = httpx
        self._client = httpx.Client(timeout=httpx.Timeout(timeout_s), headers=headers,
                                    limits=httpx.Limits(max_connections=concurrency))
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise

    def post(self, path: str, body: dict) -> dict:
        return self._request("POST", path, body)

    def get(self, path: str) -> dict:
        return self._request("GET", path, None)

    def check_reachable(self) -> None:
        """GET /models once with this client's retries; a server that never answers is a UserError."""
        try:
            self.get("/models")
        except HTTPFailure as err:
            raise UserError(f"cannot reach {self.base_url}: {err}") from None

    def map(self, fn: Callable[[Any], Any], items: Sequence, desc: str = "") -> list:
        """fn over items with at most `concurrency` in flight; results in item order."""
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool, \
                tqdm(total=len(items), desc=desc or "requests", unit="req", leave=False,
                     disable=not desc or not items, dynamic_ncols=True) as bar:
            futures = [pool.submit(fn, item) for item in items]
            results = []
            for future in futures:
                results.append(future.result())
                bar.update(1)
        return results

    def close(self) -> None:
        self._client.close()

    def _request(self, method: str, path: str, body: dict | None) -> dict:
        url = self.base_url + path
        tried: list[str] = []
        for attempt in range(self.max_retries + 1):
            outcome, retry_after = self._attempt(method, url, body)
            if isinstance(outcome, dict):
                return outcome
            tried.append(outcome)
            if not outcome.startswith("retry:") or attempt == self.max_retries:
                break
            time.sleep(self._delay(attempt, retry_after))
        attempts = f"{len(tried)} attempt{'s' * (len(tried) > 1)}"
        raise HTTPFailure(f"{method} {url}: {attempts}: {'; '.join(t.removeprefix('retry:') for t in tried)}")

    def _attempt(self, method: str, url: str, body: dict | None) -> tuple[dict | str, float | None]:
        """The JSON answer, or 'retry:why' / 'why' (not worth retrying) and a Retry-After."""
        try:
            response = self._client.request(method, url, json=body)
        except self._httpx.TimeoutException:
            return "retry:timed out", None
        except self._httpx.TransportError as err:
            return f"retry:{type(err).__name__}: {str(err) or 'connection failed'}", None
        if response.status_code in RETRY_STATUS:
            return f"retry:HTTP {response.status_code}", _retry_after(response.headers.get("retry-after"))
        if response.status_code >= 400:
            return f"HTTP {response.status_code}: {response.text[:200]}", None
        try:
            return response.json(), None
        except ValueError:
            return "retry:answer is not JSON", None

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None and retry_after <= self.max_backoff_s:
            return retry_after
        return min(self.max_backoff_s, self.backoff_s * 2 ** attempt) * random.uniform(0.5, 1.0)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


class OpenAIBackend:
    """Generation through an OpenAI-compatible server; log-likelihood requests are not offered
    (few servers score given text), so evaluation tasks that need them use hf or vllm."""

    is_chat = True

    def __init__(self, model: str, client: OpenAIClient, endpoint: str = "chat", tokenizer: Any = None,
                 max_length: int = 1 << 20):
        if endpoint not in ENDPOINTS:
            raise UserError(f"unknown endpoint {endpoint!r}; expected one of {', '.join(ENDPOINTS)}")
        self.model, self.client, self.endpoint = model, client, endpoint
        self.tokenizer, self.max_length = tokenizer, max_length

    def complete(self, requests: Sequence[GenerationRequest], desc: str = "", seed: int | None = None,
                 logprobs: bool = False) -> list[Completion | RequestFailed]:
        """One HTTP request per completion (seed + its index, so repeated prompts differ)."""
        base = 0 if seed is None else seed
        jobs = [(request, base + index, logprobs) for index, request in enumerate(requests)]
        return self.client.map(self._one, jobs, desc)

    def generate(self, requests: Sequence[GenerationRequest], desc: str = "") -> list[str]:
        out = []
        for result in self.complete(requests, desc):
            if isinstance(result, RequestFailed):
                raise UserError(result.error)
            out.append(result.text)
        return out

    def loglikelihood(self, requests, desc: str = ""):
        raise UserError("backend 'openai' only generates; tasks scored by log-likelihood need hf or vllm")

    def generate_tokens(self, requests, desc: str = "", seed: int | None = None):
        raise UserError("backend 'openai' returns text, not token ids: RL rollouts need hf or vllm")

    def sync_weights(self, model) -> None:
        raise UserError("backend 'openai' serves fixed weights: RL rollouts need hf or vllm")

    def _one(self, job: tuple[GenerationRequest, int, bool]) -> Completion | RequestFailed:
        request, seed, logprobs = job
        body = {"model": self.model, "max_tokens": request.max_new_tokens, "temperature": request.temperature,
                "top_p": request.top_p, "seed": seed, "n": 1, "logprobs": logprobs}
        if request.stop:
            body["stop"] = list(request.stop)
        chat = self.endpoint == "chat"
        if chat:
            if request.messages is None:
                raise UserError("endpoint 'chat' needs the prompt's messages")
            body["messages"] = list(request.messages)
        else:
            body["prompt"] = list(request.prompt)
            body["logprobs"] = 1 if logprobs else None
        try:
            reply = self.client.post("/chat/completions" if chat else "/completions", body)
        except HTTPFailure as err:
            return RequestFailed(str(err))
        return _parse_choice(reply, chat, logprobs)


def _parse_choice(reply: dict, chat: bool, logprobs: bool) -> Completion | RequestFailed:
    choices = reply.get("choices") or []
    if not choices:
        return RequestFailed(f"answer without choices: {str(reply)[:200]}")
    choice = choices[0]
    text = (choice.get("message") or {}).get("content") if chat else choice.get("text")
    total = None
    if logprobs and choice.get("logprobs"):
        lp = choice["logprobs"]
        values = [t["logprob"] for t in lp.get("content") or []] if chat else lp.get("token_logprobs") or []
        total = float(sum(v for v in values if v is not None))
    usage = (reply.get("usage") or {}).get("completion_tokens")
    return Completion(text or "", choice.get("finish_reason") or "stop", int(usage or 0), total)
