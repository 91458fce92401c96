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
  Authorization header: every message built from a server's answer has it redacted, and a base
  URL carrying credentials is refused (credentials.py).
A request still failing after its retries becomes a RequestFailed (the sampling job records it
and retries it on the next run) instead of stopping the whole job.

OpenAIBackend answers `complete` (and `generate`) requests through /v1/chat/completions (from
the request's messages: the server applies its chat template) or /v1/completions (text by
default; token ids for servers known to accept them), asking for log-probs as each endpoint needs
(openai_replies.py), and `loglikelihood` through the completions endpoint's echo.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tqdm.auto import tqdm

from posttrain.errors import UserError
from posttrain.generation.backend import (
    Completion,
    GenerationRequest,
    LoglikelihoodRequest,
    RequestFailed,
)
from posttrain.generation.credentials import Redactor, check_base_url, read_api_key
from posttrain.generation.openai_loglikelihood import EchoScorer, prompt_text
from posttrain.generation.openai_replies import (
    HTTPFailure,
    completion_logprob,
    logprob_fields,
)

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
ENDPOINTS = ("chat", "completions")
PROMPT_FORMATS = ("text", "ids")
# Servers whose /v1/completions takes a prompt of token ids (OpenAI's does too, but its models'
# tokenizers are not local); others get text. Recognised by /v1/models' owned_by.
ACCEPTS_TOKEN_IDS = frozenset({"posttrain", "vllm"})
log = logging.getLogger(__name__)


class OpenAIClient:
    def __init__(
        self,
        base_url: str,
        api_key_env: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        concurrency: int = 8,
    ):
        import httpx

        if concurrency < 1 or max_retries < 0:
            raise UserError(f"concurrency must be >= 1 and max_retries >= 0, got {concurrency}, {max_retries}")
        self.base_url = check_base_url(base_url).rstrip("/")
        self.max_retries, self.backoff_s, self.max_backoff_s = max_retries, backoff_s, max_backoff_s
        self.concurrency = concurrency
        headers = {"Content-Type": "application/json"}
        key = read_api_key(api_key_env)
        self.redact = Redactor(key).redact  # every message built from an answer goes through it
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._httpx = httpx
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_s), headers=headers, limits=httpx.Limits(max_connections=concurrency)
        )
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise

    def post(self, path: str, body: dict) -> dict:
        return self._request("POST", path, body)

    def get(self, path: str) -> dict:
        return self._request("GET", path, None)

    def check_reachable(self) -> dict:
        """GET /models once with this client's retries (its answer); a server that never answers is
        a UserError."""
        try:
            return self.get("/models")
        except HTTPFailure as err:
            raise UserError(f"cannot reach {self.base_url}: {err}") from None

    def accepts_token_ids(self, models: dict) -> bool:
        """Whether /v1/models' answer names a server known to take token-id prompts."""
        listed = models.get("data") if isinstance(models, dict) else None
        owners = {m.get("owned_by") for m in listed or [] if isinstance(m, dict)}
        return bool(owners) and owners <= ACCEPTS_TOKEN_IDS

    def map(self, fn: Callable[[Any], Any], items: Sequence, desc: str = "") -> list:
        """fn over items with at most `concurrency` in flight; results in item order."""
        with (
            ThreadPoolExecutor(max_workers=self.concurrency) as pool,
            tqdm(
                total=len(items),
                desc=desc or "requests",
                unit="req",
                leave=False,
                disable=not desc or not items,
                dynamic_ncols=True,
            ) as bar,
        ):
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
        raise HTTPFailure(
            self.redact(f"{method} {url}: {attempts}: {'; '.join(t.removeprefix('retry:') for t in tried)}")
        )

    def _attempt(self, method: str, url: str, body: dict | None) -> tuple[dict | str, float | None]:
        """The JSON answer, or 'retry:why' / 'why' (not worth retrying) and a Retry-After."""
        try:
            response = self._client.request(method, url, json=body)
        except self._httpx.TimeoutException:
            return "retry:timed out", None
        except self._httpx.TransportError as err:
            return f"retry:{type(err).__name__}: {self.redact(str(err)) or 'connection failed'}", None
        if response.status_code in RETRY_STATUS:
            return f"retry:HTTP {response.status_code}", _retry_after(response.headers.get("retry-after"))
        if response.status_code >= 400:
            # redacted before the cut, so a key echoed near the cut cannot leak in part
            return f"HTTP {response.status_code}: {self.redact(response.text)[:200]}", None
        try:
            return response.json(), None
        except ValueError:
            return "retry:answer is not JSON", None

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None and retry_after <= self.max_backoff_s:
            return retry_after
        return min(self.max_backoff_s, self.backoff_s * 2**attempt) * random.uniform(0.5, 1.0)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


class OpenAIBackend:
    """Generation through an OpenAI-compatible server, and log-likelihood through its completions
    endpoint's echo (openai_loglikelihood.py) where the server offers it.

    The completions endpoint gets text by default: `request.text` (a prompt sent as written), else
    the request's token ids rendered back to text with the local tokenizer (the model's chat
    template applied here). prompt_format 'ids' sends the token ids themselves, for servers known
    to accept them (posttrain serve, vLLM)."""

    def __init__(
        self,
        model: str,
        client: OpenAIClient,
        endpoint: str = "chat",
        tokenizer: Any = None,
        max_length: int = 1 << 20,
        prompt_format: str = "text",
    ):
        if endpoint not in ENDPOINTS:
            raise UserError(f"unknown endpoint {endpoint!r}; expected one of {', '.join(ENDPOINTS)}")
        if prompt_format not in PROMPT_FORMATS or (prompt_format == "ids" and tokenizer is None):
            raise UserError(f"prompt format {prompt_format!r}: expected text, or ids with a tokenizer")
        self.model, self.client, self.endpoint = model, client, endpoint
        self.tokenizer, self.max_length, self.prompt_format = tokenizer, max_length, prompt_format
        self.is_chat = True
        if tokenizer is not None:
            from posttrain.model.inference import has_own_chat_template

            self.is_chat = has_own_chat_template(tokenizer)
        self.logprob_problems: dict[str, int] = {}  # 'missing' / 'malformed' -> completions
        self._lock = threading.Lock()

    def complete(
        self, requests: Sequence[GenerationRequest], desc: str = "", seed: int | None = None, logprobs: bool = False
    ) -> list[Completion | RequestFailed]:
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

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest], desc: str = ""):
        if self.tokenizer is None:
            raise UserError(
                "backend 'openai': log-likelihood requests are built with the model's tokenizer: "
                "give --tokenizer (a local model directory or hub id)"
            )
        scorer = EchoScorer(self.client, self.model, self.tokenizer, self.prompt_format == "ids")
        return scorer.score(requests, desc)

    def generate_tokens(self, requests, desc: str = "", seed: int | None = None):
        raise UserError("backend 'openai' returns text, not token ids: RL rollouts need hf or vllm")

    def sync_weights(self, model) -> None:
        raise UserError("backend 'openai' serves fixed weights: RL rollouts need hf or vllm")

    def _one(self, job: tuple[GenerationRequest, int, bool]) -> Completion | RequestFailed:
        request, seed, logprobs = job
        chat = self.endpoint == "chat"
        body = {
            "model": self.model,
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": seed,
            "n": 1,
            **(logprob_fields(chat) if logprobs else {}),
        }
        if request.stop:
            body["stop"] = list(request.stop)
        if chat:
            if request.messages is None:
                raise UserError("endpoint 'chat' needs the prompt's messages")
            body["messages"] = list(request.messages)
        else:
            body["prompt"] = self._completions_prompt(request)
        try:
            reply = self.client.post("/chat/completions" if chat else "/completions", body)
        except HTTPFailure as err:
            return RequestFailed(str(err))
        return self._parse_choice(reply, chat, logprobs)

    def _completions_prompt(self, request: GenerationRequest) -> str | list[int]:
        if self.prompt_format == "ids":
            return list(request.prompt)
        if request.text is not None:
            return request.text
        if self.tokenizer is None or not request.prompt:
            raise UserError("endpoint 'completions' needs the prompt as text, or a --tokenizer to render it")
        return prompt_text(self.tokenizer, request.prompt)

    def _parse_choice(self, reply: dict, chat: bool, logprobs: bool) -> Completion | RequestFailed:
        choices = reply.get("choices") if isinstance(reply, dict) else None
        if not choices or not isinstance(choices[0], dict):
            return RequestFailed(self.client.redact(f"answer without choices: {str(reply)[:400]}")[:200])
        choice = choices[0]
        text = (choice.get("message") or {}).get("content") if chat else choice.get("text")
        total = None
        if logprobs:
            total, problem = completion_logprob(choice, chat)
            if problem:
                self._note_logprob_problem(problem)
        usage = (reply.get("usage") or {}).get("completion_tokens")
        return Completion(text or "", choice.get("finish_reason") or "stop", int(usage or 0), total)

    def _note_logprob_problem(self, problem: str) -> None:
        """Counted per completion; warned about once per backend, not once per row."""
        with self._lock:
            first = not self.logprob_problems
            self.logprob_problems[problem] = self.logprob_problems.get(problem, 0) + 1
        if first:
            log.warning(
                "%s returned %s log-probs for a completion: its logprob is recorded as null "
                "(counted in the manifest; this warning is not repeated)",
                self.client.base_url,
                "no" if problem == "missing" else "malformed",
            )
