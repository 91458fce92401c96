"""Backends whose actions a test writes: they answer `complete` as the real backends do."""

from __future__ import annotations

from collections.abc import Callable

from posttrain.generation.backend import Completion, RequestFailed


class ScriptedPolicy:
    """Answers each request with act(messages); records the requests (and their seeds)."""

    def __init__(self, act: Callable[[list[dict]], str | None], tokenizer=None, is_chat: bool = True):
        self.act, self.tokenizer, self.is_chat, self.max_length = act, tokenizer, is_chat, 4096
        self.requests, self.seeds = [], []

    def complete(self, requests, desc: str = "", seed=None, logprobs: bool = False):
        self.requests += list(requests)
        self.seeds.append(seed)
        out = []
        for request in requests:
            text = self.act(list(request.messages))
            out.append(RequestFailed("server said 503") if text is None else Completion(text, "stop", 1))
        return out


def greedy_grid(messages: list[dict]) -> str:
    """The right move for the grid's last observation 'You r,c. Goal gr,gc.'."""
    text = messages[-1]["content"]
    here, goal = text.split("You ")[1].split(". Goal ")
    (r, c), (gr, gc) = map(int, here.split(",")), map(int, goal.rstrip(".").split(","))
    return "2" if gr > r else "1" if gr < r else "4" if gc > c else "3"
