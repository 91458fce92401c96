"""The FastAPI app of `posttrain serve`: routes, prompt building, waiting for the batcher.

Each completion route reads the raw body, validates it (schema.py: every field before any
generation), turns it into token-id prompts, submits one Job to the Batcher and awaits it without
blocking the event loop, so concurrent requests meet in the batcher's queue. While waiting, the handler
checks every `poll_s` whether the client is still connected; a disconnect or the request timeout cancels
the job (dropped if the worker has not taken it yet).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from contextlib import asynccontextmanager

from fastapi import Request  # at module level: FastAPI resolves the handlers' annotations here
from pydantic import ValidationError

from posttrain.generation.server.batcher import Batcher, Job
from posttrain.generation.server.errors import (
    APIError,
    guarded,
    install_error_handlers,
    parse_json_body,
    validation_error,
)
from posttrain.generation.server.responses import chat_choices, completion_choices, envelope, new_id, usage
from posttrain.generation.server.schema import ChatRequest, CompletionRequest, seed_value
from posttrain.generation.server.stream import chat_stream, completion_stream

log = logging.getLogger("posttrain.serve")


async def wait_for_answers(future, is_disconnected, timeout_s: float, poll_s: float = 0.25) -> list:
    """The job's answers; cancels the job when `is_disconnected()` says so or after timeout_s."""
    waiter = asyncio.wrap_future(future)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        # never wait past the deadline: a poll longer than the time left would let a late answer
        # through (and made the timeout as coarse as the poll)
        done, _ = await asyncio.wait({waiter}, timeout=max(0.0, min(poll_s, deadline - loop.time())))
        if done:
            return waiter.result()
        if await is_disconnected():
            waiter.cancel()
            raise APIError(499, "the client disconnected; its request was cancelled", None, "cancelled")
        if loop.time() > deadline:
            waiter.cancel()
            raise APIError(504, f"the request took more than {timeout_s:g} s and was cancelled", None, "timeout")


class Server:
    """What the routes share: the backend, its batcher, the served names and the request timeout."""

    def __init__(self, backend, names: list[str], max_batch: int, wait_s: float, timeout_s: float):
        from posttrain.generation.prompter import Prompter

        self.backend, self.tokenizer, self.names = backend, backend.tokenizer, names
        self.prompter = Prompter(backend.tokenizer, backend.is_chat)
        self.batcher = Batcher(backend, max_batch, wait_s)
        self.timeout_s = timeout_s
        self.vocab_size = len(backend.tokenizer)

    def check_model(self, model: str) -> None:
        if model not in self.names:
            raise APIError(
                404,
                f"the model '{model}' does not exist; this server serves '{self.names[0]}'",
                "model",
                "model_not_found",
            )

    def model_object(self) -> dict:
        return {"id": self.names[0], "object": "model", "created": 0, "owned_by": "posttrain"}

    def check_prompt(self, ids: list[int], param: str) -> list[int]:
        if not ids:
            raise APIError(400, f"{param}: the prompt is empty (no tokens)", param)
        bad = next((t for t in ids if t >= self.vocab_size), None)
        if bad is not None:
            raise APIError(400, f"{param}: token id {bad} is outside the vocabulary (size {self.vocab_size})", param)
        if len(ids) >= self.backend.max_length:
            raise APIError(
                400,
                f"{param}: the prompt has {len(ids)} tokens; the model's context is {self.backend.max_length}",
                param,
                "context_length_exceeded",
            )
        return ids

    async def generate(self, body, prompts: list[list[int]], request) -> list:
        """One job for every prompt times n; answers in prompt order, n per prompt."""
        from posttrain.generation.backend import GenerationRequest

        temperature = 0.0 if body.greedy() else body.temperature
        rows = [
            GenerationRequest(p, body.new_tokens(), body.stops(), temperature, body.top_p or 1.0)
            for p in prompts
            for _ in range(body.n)
        ]
        job = Job(rows, seed_value(body.seed), temperature > 0, body.top_k(), getattr(body, "echo", False))
        return await wait_for_answers(self.batcher.submit(job), request.is_disconnected, self.timeout_s)


async def _validated(request, schema):
    body = parse_json_body(await request.body())
    try:
        return schema.model_validate(body)
    except ValidationError as err:
        raise validation_error(err.errors()) from None


def build_app(backend, names: list[str], max_batch: int = 16, wait_s: float = 0.005, timeout_s: float = 600.0):
    """The FastAPI app around an HFBackend; names[0] is the id /v1/models lists, the rest aliases."""
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    server = Server(backend, names, max_batch, wait_s, timeout_s)

    @asynccontextmanager
    async def lifespan(app):
        yield
        # uvicorn re-raises SIGTERM after shutdown, so this is the last code that runs
        print(f"posttrain serve stopped: {server.batcher.summary()}", file=sys.stderr, flush=True)

    app = FastAPI(title="posttrain serve", lifespan=lifespan)
    install_error_handlers(app)
    app.state.server = server

    @app.get("/v1/models")
    @guarded
    async def models() -> dict:
        return {"object": "list", "data": [server.model_object()]}

    @app.get("/v1/models/{model_id:path}")
    @guarded
    async def model(model_id: str) -> dict:
        server.check_model(model_id)
        return server.model_object()

    @app.post("/v1/chat/completions")
    @guarded
    async def chat(request: Request):
        body = await _validated(request, ChatRequest)
        server.check_model(body.model)
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in body.messages]
        prompt = server.check_prompt(server.prompter.encode(messages), "messages")
        answers = await server.generate(body, [prompt], request)
        counts = usage([len(prompt)], answers)
        name = body.model
        if body.stream:
            return StreamingResponse(
                chat_stream(server.tokenizer, name, answers, counts if body.include_usage() else None),
                media_type="text/event-stream",
            )
        return envelope("chat.completion", name, chat_choices(server.tokenizer, answers), counts, new_id("chat"))

    @app.post("/v1/completions")
    @guarded
    async def completions(request: Request):
        body = await _validated(request, CompletionRequest)
        server.check_model(body.model)
        prompts = [
            server.check_prompt(_ids(server.tokenizer, p), f"prompt[{i}]" if len(body.prompts()) > 1 else "prompt")
            for i, p in enumerate(body.prompts())
        ]
        answers = await server.generate(body, prompts, request)
        texts = [
            p if isinstance(p, str) else server.tokenizer.decode(p, skip_special_tokens=True)
            for p in body.prompts()
            for _ in range(body.n)
        ]
        counts = usage([len(p) for p in prompts], answers)
        if body.stream:
            return StreamingResponse(
                completion_stream(
                    server.tokenizer, body.model, answers, texts, body.echo, counts if body.include_usage() else None
                ),
                media_type="text/event-stream",
            )
        return envelope(
            "text_completion",
            body.model,
            completion_choices(server.tokenizer, answers, texts, body.echo),
            counts,
            new_id("text"),
        )

    return app


def _ids(tokenizer, prompt: str | list[int]) -> list[int]:
    """Token ids of a text prompt as the tokenizer adds them (BOS included), or the ids as given."""
    return list(prompt) if isinstance(prompt, list) else list(tokenizer(prompt)["input_ids"])
