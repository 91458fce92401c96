"""Opening a model to sample from: one function per way a caller names it, all ending in the same
backends (generation/backend.py HFBackend, vllm_backend.py, openai_backend.py).

    make_backend(model, kind, ...)        in-process hf or vllm (eval, serve, quickstart)
    make_generation_backend(args, model)  `posttrain sample`'s flags, openai included
    open_backend(source, ...)             a recipe's ModelSource / ModelSpec (synth, judges, scorers)
"""

from __future__ import annotations

import argparse

from posttrain.errors import UserError
from posttrain.generation.source import ModelSource

BACKENDS = ("hf", "vllm", "openai")


def make_backend(model: str, kind: str, batch_size: int, seed: int, dtype: str = "float32"):
    if kind == "vllm":
        from posttrain.generation.vllm_backend import VLLMBackend
        from posttrain.model.adapters import is_adapter_dir
        from posttrain.model.paths import resolve_model_path

        path = resolve_model_path(model)
        if is_adapter_dir(path):
            raise UserError("the vllm backend needs a full model: posttrain merge-lora ADAPTER --out DIR first")
        return VLLMBackend(path, seed=seed, dtype="auto" if dtype == "float32" else dtype)
    from posttrain.generation.backend import HFBackend
    from posttrain.model.inference import (
        has_own_chat_template,
        load_model_and_tokenizer,
    )

    loaded, tokenizer = load_model_and_tokenizer(model, dtype)
    return HFBackend(loaded, tokenizer, batch_size, seed, is_chat=has_own_chat_template(tokenizer))


def add_backend_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=BACKENDS, default="hf")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--base-url", help="openai: the server's base URL, e.g. http://127.0.0.1:8000/v1")
    p.add_argument(
        "--endpoint",
        choices=["chat", "completions"],
        default="chat",
        help="openai: /v1/chat/completions (messages) or /v1/completions (text; token ids "
        "for posttrain serve and vLLM when --tokenizer is given)",
    )
    p.add_argument(
        "--tokenizer",
        help="openai, completions endpoint: render prompts with this tokenizer's "
        "chat template (a model directory or hub id) instead of sending them as written",
    )
    p.add_argument("--api-key-env", default=None, help="openai: environment variable holding the API key")
    p.add_argument("--concurrency", type=int, default=8, help="openai: requests in flight")
    p.add_argument("--timeout", type=float, default=60.0, help="openai: seconds per request")
    p.add_argument("--max-retries", type=int, default=4, help="openai: retries of a failing request")


def make_generation_backend(args: argparse.Namespace, model: str | None = None):
    """hf / vllm through make_backend; openai through OpenAIClient."""
    model = model or args.model
    if args.backend != "openai":
        backend = make_backend(model, args.backend, args.batch_size, args.seed, args.dtype)
        backend.show_progress = False  # the job's bar counts rows; one bar per batch would only flicker
        return backend
    from posttrain.generation.openai_backend import OpenAIBackend, OpenAIClient

    if not args.base_url:
        raise UserError("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
    client = OpenAIClient(args.base_url, args.api_key_env, args.timeout, args.max_retries, concurrency=args.concurrency)
    models = client.check_reachable()
    tokenizer = None
    if args.endpoint == "completions" and getattr(args, "tokenizer", None):
        from posttrain.generation.openai_args import load_server_tokenizer

        tokenizer = load_server_tokenizer(args.tokenizer)
    prompt_format = "ids" if tokenizer is not None and client.accepts_token_ids(models) else "text"
    return OpenAIBackend(model, client, args.endpoint, tokenizer, prompt_format=prompt_format)


def open_backend(source: ModelSource, batch_size: int, seed: int, where: str = "recipe"):
    """The backend for `source`; a missing model or endpoint is a one-line error naming `where`."""
    if not source.model:
        raise UserError(f"{where}: no model given (set model=DIR, a hub id, or the served model's name)")
    if source.backend == "openai" and not source.base_url:
        raise UserError(f"{where}: backend openai needs base_url (e.g. http://127.0.0.1:8000/v1)")
    args = argparse.Namespace(
        backend=source.backend,
        batch_size=batch_size,
        seed=seed,
        dtype=source.dtype,
        base_url=source.base_url,
        endpoint=source.endpoint,
        api_key_env=source.api_key_env,
        concurrency=source.concurrency,
        timeout=source.timeout,
        max_retries=source.max_retries,
        tokenizer=source.tokenizer,
    )
    return make_generation_backend(args, source.model)


def chat_tokenizer(backend, where: str):
    """The backend's tokenizer, which must carry its own chat template (an aligned model)."""
    tokenizer = getattr(backend, "tokenizer", None)
    if tokenizer is None:
        raise UserError(
            f"{where}: token-id prompts need the model's tokenizer: with backend openai use "
            "endpoint=completions (and tokenizer=DIR when the served name is not a path)"
        )
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(f"{where}: the tokenizer has no chat template: this method needs an aligned (chat) model")
    return tokenizer
