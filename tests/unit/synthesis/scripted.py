"""A scripted "strong model" for the synthesis tests: a real loopback OpenAI-compatible server
(fakes.json_server) whose answer to each chat request is respond(last user message), with every
prompt it was sent recorded, so each test checks a pipeline's structure exactly."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

from tests.unit.eval.fakes import json_server


class ScriptedChat:
    def __init__(self, respond: Callable[[str], str]):
        self.respond = respond
        self.prompts: list[str] = []  # the last user message of each request
        self.chats: list[list[dict]] = []  # each request's whole message list
        self.down_after: int | None = None  # answer 503 once this many prompts were answered
        self._lock = threading.Lock()

    def reply(self, body: dict, headers: dict) -> tuple[int, dict]:
        prompt = body["messages"][-1]["content"]
        with self._lock:
            if self.down_after is not None and len(self.prompts) >= self.down_after:
                return 503, None
            self.prompts.append(prompt)
            self.chats.append(body["messages"])
        text = self.respond(prompt)
        return 200, {
            "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"completion_tokens": len(text.split())},
        }

    def count(self, marker: str) -> int:
        return sum(marker in p for p in self.prompts)


@contextlib.contextmanager
def scripted_model(respond: Callable[[str], str]) -> Iterator[tuple[str, ScriptedChat]]:
    chat = ScriptedChat(respond)
    with json_server(chat.reply) as url:
        yield url, chat


def model_overrides(role: str, url: str, name: str = "scripted") -> list[str]:
    return [
        f"{role}.model={name}",
        f"{role}.backend=openai",
        f"{role}.base_url={url}",
        f"{role}.max_retries=0",
        f"{role}.concurrency=2",
    ]
