"""A teacher, judge, actor or weak/strong model of a synthesis recipe, through the generation
backends `posttrain sample` uses (hf or vllm in-process, or any OpenAI-compatible server).

    teacher: {model: gpt-4o-mini, backend: openai, base_url: http://127.0.0.1:8000/v1}
    weak:    {model: runs/small/final, backend: hf, temperature: 0}

ChatModel.ask(chats, n) returns, per chat, its n completion texts or the RequestFailed of the
first failed completion, so a pipeline records the item as failed (the job retries it on the next
run) instead of stopping. An OpenAI-compatible server is checked (GET /models) when the model is
made; an hf/vllm model is loaded on first use, so a finished job that is rerun loads nothing.
"""

from __future__ import annotations

from posttrain.generation.factory import open_backend
from posttrain.generation.source import ModelSpec, require_model


class ChatModel:
    def __init__(self, spec: ModelSpec, role: str):
        self.spec, self.role = require_model(spec, role), role
        self._backend = None
        self.calls = 0  # completions asked for, for the manifest
        if spec.backend == "openai":
            self.backend()  # cheap: an unreachable server is one line before any job starts

    def backend(self):
        if self._backend is None:
            self._backend = open_backend(self.spec, self.spec.batch_size, 0, self.role)
        return self._backend

    def ask(self, chats: list[list[dict] | str], n: int = 1, seed: int = 0, temperature: float | None = None) -> list:
        """Per chat (messages, or a string = one user message): n texts, or a RequestFailed."""
        from posttrain.generation.backend import RequestFailed
        from posttrain.generation.sample import Sampler
        from posttrain.generation.source import SamplingSettings

        if not chats:
            return []
        s = self.spec
        settings = SamplingSettings(
            n=n,
            temperature=s.temperature if temperature is None else temperature,
            top_p=s.top_p,
            max_new_tokens=s.max_new_tokens,
            seed=seed,
            logprobs=False,
        )
        sampler = Sampler(self.backend(), s.backend, s.model, settings)
        items = [{"row": i, "fields": {}, "messages": as_messages(chat)} for i, chat in enumerate(chats)]
        output = sampler(items, 0)
        self.calls += n * len(chats)
        results: list = [None] * len(chats)
        for row in output.rows:
            results[row["row"]] = [c["text"] for c in row["completions"]]
        for failure in output.failures:
            results[failure["row"]] = RequestFailed(f"{self.role}: {failure['error']}")
        return results


def as_messages(chat: list[dict] | str) -> list[dict]:
    return [{"role": "user", "content": chat}] if isinstance(chat, str) else list(chat)
