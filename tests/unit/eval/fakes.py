"""Models, backends and judges whose behaviour a test controls: scripted ones check the engine's
plumbing (requests in, scores out) without depending on what a tiny model happens to say; the
memorised model is a real model that knows the answers of the first generated documents."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from posttrain.generation.backend import (
    GenerationRequest,
    LoglikelihoodRequest,
    LoglikelihoodResult,
)


class ScriptedBackend:
    """Answers each generation request with answer(prompt text) and each log-likelihood request
    with score(prompt text, continuation text); records every request it saw."""

    def __init__(
        self,
        tokenizer,
        answer: Callable[[str], str] = lambda prompt: "",
        score: Callable[[str, str], float] = lambda context, continuation: 0.0,
        is_chat: bool = True,
        max_length: int = 256,
    ):
        self.tokenizer, self.answer, self.score = tokenizer, answer, score
        self.is_chat, self.max_length = is_chat, max_length
        self.generated: list[GenerationRequest] = []
        self.scored: list[LoglikelihoodRequest] = []

    def _text(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def generate(self, requests: Sequence[GenerationRequest], desc: str = "") -> list[str]:
        self.generated += list(requests)
        return [self.answer(self._text(r.prompt)) for r in requests]

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest], desc: str = "") -> list[LoglikelihoodResult]:
        self.scored += list(requests)
        return [
            LoglikelihoodResult(self.score(self._text(r.context), self._text(r.continuation)), len(r.continuation))
            for r in requests
        ]


class FixedJudge:
    """Prefers the answer for which prefer(answer_a, answer_b) says 'A' or 'B' (or 0.5 for a tie),
    read from the filled-in pairwise template."""

    def __init__(self, prefer: Callable[[str, str], float]):
        self.prefer = prefer
        self.prompts: list[str] = []

    def choose(self, prompts: Sequence[str], labels: Sequence[str]) -> list[list[float]]:
        self.prompts += list(prompts)
        out = []
        for prompt in prompts:
            a = prompt.split("# Response A\n", 1)[1].split("\n\n# Response B", 1)[0]
            b = prompt.split("# Response B\n", 1)[1].split("\n\nWhich response", 1)[0]
            p_a = self.prefer(a, b)
            out.append([p_a, 1 - p_a])
        return out


MEMORISED_DOCS = 8
MEMORISED_ANSWERS = {
    "arithmetic": lambda doc: f"The answer is {doc['reference']}.",
    "countdown": lambda doc: doc["solution"],
}


def first_documents(name: str, n: int = MEMORISED_DOCS) -> list[dict]:
    from posttrain.eval.tasks.builtin import resolve_task
    from posttrain.eval.tasks.documents import load_documents

    return load_documents(resolve_task(name), limit=n)[0]


def train_memorised(base_dir, root: Path) -> Path:
    """Fine-tune the tiny test model (100 steps, ~5 s on one core) on the answers of the first
    MEMORISED_DOCS arithmetic and countdown documents; returns the model directory."""
    from posttrain.config.recipe import load_recipe
    from posttrain.stages import sft

    rows = [
        {"messages": [{"role": "user", "content": doc["prompt"]}, {"role": "assistant", "content": answer(doc)}]}
        for name, answer in MEMORISED_ANSWERS.items()
        for doc in first_documents(name)
    ]
    data = root / "memorise.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = load_recipe(
        None,
        [
            f"model={base_dir}",
            f"data=[{data}]",
            "train.micro_batch_size=16",
            "train.max_steps=100",
            "train.lr=6e-3",
            "train.warmup_steps=5",
            "log.tensorboard=false",
        ],
    )
    sft.run(recipe, output_dir=str(root / "run"))
    return root / "run" / "final"


@contextlib.contextmanager
def json_server(reply: Callable[[dict, dict], tuple[int, dict | None]], models: list[dict] = ()) -> Iterator[str]:
    """A real HTTP server on a free loopback port for the duration of the block, yielding its
    `http://127.0.0.1:PORT/v1` base URL. Each POST's JSON body and headers go to reply(body,
    headers), which returns (status, JSON payload or None for an empty body); any GET (the
    clients' GET /models reachability check) gets `models` as the model list."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self._send(*reply(body, dict(self.headers)))

        def do_GET(self):  # GET /models: OpenAIClient.check_reachable before the first request
            self._send(200, {"object": "list", "data": list(models)})

        def _send(self, status: int, payload: dict | None):
            data = json.dumps(payload).encode() if payload is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
