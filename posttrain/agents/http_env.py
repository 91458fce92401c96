"""Environments over HTTP: a client (httpx) for an environment server, and a server exposing any
Python environment (so an environment can live in another process, venv or machine).

Protocol (JSON over POST):
    {base}/reset  {"task": {...}}                -> {"episode": ID, "observation": TEXT, "instructions": TEXT}
    {base}/step   {"episode": ID, "action": TEXT} -> {"observation": TEXT, "reward": R, "done": BOOL, "info": {...}}
An environment error is answered with status 500 and {"error": TEXT}; the client raises it, and the
rollout records it on the episode. An API key, when the server needs one, is read from the
environment variable named by `api_key_env` and sent as a bearer token (never logged or written).
"""

from __future__ import annotations

import itertools
import json
import os
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from posttrain.agents.environment import Step
from posttrain.errors import UserError


class EnvironmentServerError(RuntimeError):
    """The server answered an error (or nothing usable): the episode fails with this reason."""


class HTTPEnvironment:
    def __init__(self, url: str, timeout_s: float = 30.0, api_key_env: str | None = None):
        import httpx

        headers = {}
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise UserError(f"environment server: variable {api_key_env} (api_key_env) is not set")
            headers["Authorization"] = f"Bearer {key}"
        self.url, self.instructions, self.episode = url.rstrip("/"), "", None
        self.client = httpx.Client(timeout=timeout_s, headers=headers)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        import httpx

        try:
            response = self.client.post(f"{self.url}/{path}", json=body)
        except httpx.HTTPError as err:
            raise EnvironmentServerError(f"environment server {self.url}: {type(err).__name__}: {err}") from None
        try:
            payload = response.json()
        except ValueError:
            payload = {}
        if response.status_code != 200:
            reason = payload.get("error") if isinstance(payload, dict) else None
            raise EnvironmentServerError(
                f"environment server /{path}: status {response.status_code}: {reason or response.text[:200]}"
            )
        if not isinstance(payload, dict) or not isinstance(payload.get("observation"), str):
            raise EnvironmentServerError(f"environment server /{path}: answer has no 'observation' text")
        return payload

    def reset(self, task: dict[str, Any]) -> str:
        payload = self._post("reset", {"task": task})
        self.episode, self.instructions = payload.get("episode"), str(payload.get("instructions") or "")
        return payload["observation"]

    def step(self, action: str) -> Step:
        payload = self._post("step", {"episode": self.episode, "action": action})
        return Step(
            payload["observation"],
            float(payload.get("reward") or 0.0),
            bool(payload.get("done")),
            dict(payload.get("info") or {}),
        )

    def close(self) -> None:
        self.client.close()


def environment_server(make_env: Callable[[], Any], host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A server (not yet serving: call serve_forever) playing each episode on a fresh make_env()."""
    episodes: dict[str, Any] = {}
    counter, lock = itertools.count(), threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if self.path.rstrip("/").endswith("/reset"):
                    env = make_env()
                    observation = env.reset(body.get("task") or {})
                    with lock:
                        episode = str(next(counter))
                        episodes[episode] = env
                    self._send(
                        200,
                        {
                            "episode": episode,
                            "observation": observation,
                            "instructions": getattr(env, "instructions", ""),
                        },
                    )
                elif self.path.rstrip("/").endswith("/step"):
                    env = episodes.get(str(body.get("episode")))
                    if env is None:
                        return self._send(404, {"error": f"no episode {body.get('episode')!r}: reset first"})
                    step = env.step(str(body.get("action", "")))
                    if step.done:
                        episodes.pop(str(body["episode"]), None)
                    self._send(
                        200,
                        {"observation": step.observation, "reward": step.reward, "done": step.done, "info": step.info},
                    )
                else:
                    self._send(404, {"error": f"unknown path {self.path}: POST /reset or /step"})
            except Exception as err:  # the environment's own failure goes back to the client
                self._send(500, {"error": f"{type(err).__name__}: {err}"})

        def _send(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    return ThreadingHTTPServer((host, port), Handler)
