"""The pieces `posttrain sample` and `posttrain eval` share when they talk to an OpenAI-compatible
server: its command-line options, the local tokenizer, what goes into a manifest, and the count of
completions the server returned no log-probs for."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from posttrain.errors import UserError, row_error


def add_server_arguments(p: argparse.ArgumentParser, endpoint_default: str) -> None:
    """--base-url ... --max-retries for a command that does not already have them (eval)."""
    p.add_argument("--base-url", help="openai: the server's base URL, e.g. http://127.0.0.1:8000/v1")
    p.add_argument(
        "--endpoint",
        choices=["chat", "completions"],
        default=endpoint_default,
        help="openai: generate through /v1/chat/completions (the server's template) or "
        "/v1/completions (the prompt rendered here, exactly as hf renders it)",
    )
    p.add_argument(
        "--tokenizer", help="openai: the served model's tokenizer (model directory or hub id; default: MODEL)"
    )
    p.add_argument("--api-key-env", help="openai: environment variable holding the API key")
    p.add_argument("--concurrency", type=int, default=8, help="openai: requests in flight")
    p.add_argument("--timeout", type=float, default=60.0, help="openai: seconds per request")
    p.add_argument("--max-retries", type=int, default=4, help="openai: retries of a failing request")


def load_server_tokenizer(name: str):
    from posttrain.model.load import load_tokenizer

    return load_tokenizer(name)


def open_server_backend(model: str, args: argparse.Namespace, tokenizer):
    """An OpenAIBackend for `posttrain eval`: token-id prompts only for a server known to take them."""
    from posttrain.generation.openai_backend import OpenAIBackend, OpenAIClient

    if not args.base_url:
        raise UserError("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
    client = OpenAIClient(args.base_url, args.api_key_env, args.timeout, args.max_retries, concurrency=args.concurrency)
    models = client.check_reachable()
    prompt_format = "ids" if client.accepts_token_ids(models) else "text"
    return OpenAIBackend(model, client, args.endpoint, tokenizer, prompt_format=prompt_format)


def server_identity(backend, args: argparse.Namespace) -> dict:
    """What a job's output depends on about the server (its URL is credential-free: checked)."""
    if backend.endpoint == "chat":
        prompt = "messages (the server's chat template)"
    elif backend.tokenizer is None:
        prompt = "text as written"
    else:
        rendered = "token ids" if backend.prompt_format == "ids" else "text"
        prompt = f"{rendered} rendered with {getattr(args, 'tokenizer', None) or args.model}"
    return {"base_url": backend.client.base_url, "endpoint": backend.endpoint, "prompt": prompt}


def with_prompt_texts(items: list[dict], backend, path: str) -> list[dict]:
    """Completions endpoint without a tokenizer: each prompt goes as its text, so it must be a
    single user turn (a plain-string prompt is one); a conversation needs --tokenizer."""
    if backend.endpoint != "completions" or backend.tokenizer is not None:
        return items
    out = []
    for item in items:
        messages = item["messages"]
        if len(messages) != 1 or messages[0].get("role") != "user":
            raise row_error(
                path,
                item["row"],
                "prompt",
                f"a conversation of {len(messages)} messages: the "
                "completions endpoint needs --tokenizer to render it (or --endpoint chat)",
            )
        out.append({**item, "text": messages[0]["content"]})
    return out


def note_missing_logprobs(out: Path, manifest: dict) -> dict:
    """Count the completions of the whole output without a log-prob; warn in the manifest."""
    from posttrain.data.jobs import add_run_notes

    total = missing = 0
    for line in out.read_text(encoding="utf-8").splitlines():
        for completion in json.loads(line).get("completions", []):
            total += 1
            missing += completion.get("logprob") is None
    warnings = [w for w in manifest.get("warnings", []) if "log-prob" not in w]
    if missing:
        warnings.append(
            f"{missing} of {total} completions have no log-prob (logprob: null): the server "
            "returned none or malformed ones although they were requested"
        )
    return add_run_notes(out, {"completions_without_logprob": missing}, warnings)
