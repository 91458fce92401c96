"""`posttrain serve MODEL`: an OpenAI-compatible server for a local model (FastAPI + uvicorn).

    posttrain serve MODEL [--host 127.0.0.1] [--port 8000] [--batch-size 16] [--name NAME]

Routes: GET /v1/models, POST /v1/chat/completions (messages), POST /v1/completions (prompt: text or
token ids), with n, max_tokens, temperature, top_p, stop, seed and logprobs (top_logprobs: the k
likeliest tokens at each step). Answers come from the same HFBackend.complete that
`posttrain sample --backend hf` calls, with the same chat template (eval's Prompter), so both give
the same tokens under greedy decoding. Log-probs are the model's own (temperature 1).

Concurrent requests are batched: a worker thread takes every request waiting in the queue (up to
--batch-size completions) into one generate call. Greedy answers do not depend on the batching;
sampled ones do (the batch is sampled with its first request's seed), as on other batching servers.
Binds 127.0.0.1 unless --host says otherwise: the server has no authentication.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from concurrent.futures import Future
from typing import Any

from pydantic import BaseModel, ConfigDict

from posttrain.errors import UserError


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    n: int = 1
    stop: str | list[str] | None = None
    seed: int | None = None


class ChatBody(_Body):
    messages: list[dict[str, Any]]
    logprobs: bool = False
    top_logprobs: int | None = None


class CompletionBody(_Body):
    prompt: str | list[int]
    logprobs: int | None = None


class Batcher:
    """One worker thread owns the model; handlers queue (requests, seed) and wait for the result."""

    def __init__(self, backend, max_batch: int, lock: threading.Lock):
        self.backend, self.max_batch, self.lock = backend, max_batch, lock
        self.jobs: queue.Queue = queue.Queue()
        threading.Thread(target=self._work, daemon=True).start()

    def complete(self, requests: list, seed: int) -> list:
        future: Future = Future()
        self.jobs.put((requests, seed, future))
        return future.result()

    def _work(self) -> None:
        while True:
            batch = [self.jobs.get()]
            size = len(batch[0][0])
            while size < self.max_batch:
                try:
                    batch.append(self.jobs.get_nowait())
                except queue.Empty:
                    break
                size += len(batch[-1][0])
            requests = [r for job in batch for r in job[0]]
            try:
                with self.lock:
                    done = self.backend.complete(requests, seed=batch[0][1], logprobs=False)
            except Exception as err:  # noqa: BLE001 -- handed to the waiting handlers as a 500
                for _, _, future in batch:
                    future.set_exception(err)
                continue
            start = 0
            for job_requests, _, future in batch:
                future.set_result(done[start : start + len(job_requests)])
                start += len(job_requests)


def token_details(backend, prompt: list[int], completion: list[int], top_k: int) -> list[tuple[int, float, list]]:
    """(token, its log-prob, [(token, log-prob)] of the top_k likeliest) for each completion token."""
    import torch

    if not completion:
        return []
    ids = torch.tensor([prompt + completion], device=next(backend.model.parameters()).device)
    with backend.lock, torch.inference_mode():
        logits = backend.model(ids).logits[0, len(prompt) - 1 : -1].float()
    logp = torch.log_softmax(logits, dim=-1)
    top = logp.topk(top_k, dim=-1) if top_k else None
    out = []
    for t, token in enumerate(completion):
        alternatives = list(zip(top.indices[t].tolist(), top.values[t].tolist())) if top is not None else []
        out.append((token, logp[t, token].item(), alternatives))
    return out


def build_app(backend, model_name: str, max_batch: int = 16):
    """The FastAPI app around an HFBackend."""
    from fastapi import FastAPI, HTTPException

    from posttrain.generation.backend import GenerationRequest
    from posttrain.generation.prompter import Prompter

    app = FastAPI(title="posttrain serve")
    backend.lock = threading.Lock()  # log-prob passes share the model with the batcher's thread
    batcher, prompter, tok = Batcher(backend, max_batch, backend.lock), Prompter(backend.tokenizer, backend.is_chat), backend.tokenizer

    def run(body: _Body, prompt: list[int], top_k: int | None):
        if body.n < 1 or not prompt:
            raise HTTPException(400, "n must be >= 1 and the prompt must not be empty")
        stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
        max_new = body.max_completion_tokens or body.max_tokens or 256
        request = GenerationRequest(prompt, max_new, stop, body.temperature, body.top_p)
        done = batcher.complete([request] * body.n, body.seed or 0)
        details = [token_details(backend, prompt, list(c.token_ids), top_k or 0) if top_k is not None else None
                   for c in done]
        usage = {"prompt_tokens": len(prompt), "completion_tokens": sum(c.num_tokens for c in done),
                 "total_tokens": len(prompt) * body.n + sum(c.num_tokens for c in done)}
        return done, details, usage

    def envelope(kind: str, choices: list, usage: dict) -> dict:
        return {"id": f"{kind}-{uuid.uuid4().hex[:16]}", "object": kind, "created": int(time.time()),
                "model": model_name, "choices": choices, "usage": usage}

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "posttrain"}]}

    @app.post("/v1/chat/completions")
    def chat(body: ChatBody) -> dict:
        top_k = min(body.top_logprobs or 0, 20) if body.logprobs else None
        done, details, usage = run(body, prompter.encode(body.messages), top_k)
        choices = [{"index": i, "message": {"role": "assistant", "content": c.text},
                    "finish_reason": c.finish_reason,
                    "logprobs": None if d is None else {"content": [
                        {"token": tok.decode([t]), "logprob": lp,
                         "top_logprobs": [{"token": tok.decode([a]), "logprob": alp} for a, alp in alts]}
                        for t, lp, alts in d]}}
                   for i, (c, d) in enumerate(zip(done, details))]
        return envelope("chat.completion", choices, usage)

    @app.post("/v1/completions")
    def completions(body: CompletionBody) -> dict:
        prompt = body.prompt if isinstance(body.prompt, list) else tok(body.prompt)["input_ids"]
        top_k = min(body.logprobs, 20) if body.logprobs is not None else None
        done, details, usage = run(body, list(prompt), top_k)
        choices = [{"index": i, "text": c.text, "finish_reason": c.finish_reason,
                    "logprobs": None if d is None else {
                        "tokens": [tok.decode([t]) for t, _, _ in d], "token_logprobs": [lp for _, lp, _ in d],
                        "top_logprobs": [{tok.decode([a]): alp for a, alp in alts} for _, _, alts in d]}}
                   for i, (c, d) in enumerate(zip(done, details))]
        return envelope("text_completion", choices, usage)

    return app


def serve_command(args) -> int:
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError:
        raise UserError("posttrain serve needs fastapi and uvicorn: pip install 'posttrain[serve]'") from None
    from posttrain.generation.factory import make_backend

    backend = make_backend(args.model, "hf", args.batch_size, 0, args.dtype)
    backend.show_progress = False
    app = build_app(backend, args.name or args.model, args.batch_size)
    print(f"serving {args.model} at http://{args.host}:{args.port}/v1", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
