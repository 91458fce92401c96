"""`posttrain serve MODEL`: an OpenAI-compatible server for a local model (FastAPI + uvicorn).

    posttrain serve MODEL [--host 127.0.0.1] [--port 8000] [--batch-size 16] [--batch-wait-ms 5]
                          [--request-timeout 600] [--name NAME]

Routes: GET /v1/models, GET /v1/models/{id}, POST /v1/chat/completions, POST /v1/completions, with
the request surface and error objects of OpenAI's API (docs/serve.md). Answers come from the same
HFBackend.complete that `posttrain sample --backend hf` calls, with the same chat template (eval's
Prompter), so both give the same tokens under greedy decoding. The pieces: schema.py (request
bodies and their ranges), errors.py (error objects), batcher.py (concurrent requests as
one batch), responses.py and stream.py (answers, server-sent events), app.py (routes).
Binds 127.0.0.1 unless --host says otherwise: the server has no authentication.
"""

from __future__ import annotations

import socket

from posttrain.errors import UserError


def check_serve_args(args) -> None:
    """One line for each setting that cannot work, before the model is loaded."""
    if not 0 < args.port < 65536:
        raise UserError(f"--port must be between 1 and 65535, got {args.port}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    if not 0 <= args.batch_wait_ms <= 1000:
        raise UserError(f"--batch-wait-ms must be between 0 and 1000, got {args.batch_wait_ms}")
    if not args.request_timeout > 0:
        raise UserError(f"--request-timeout must be > 0 seconds, got {args.request_timeout}")


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the model loads, so a taken port or a bad host is one line
    (uvicorn serves on this socket: no second bind that could race another process)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:
        raise UserError(f"--host {host!r} cannot be resolved: {err}") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    sock.listen(2048)
    return sock


def serve_command(args) -> int:
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError:
        raise UserError("posttrain serve needs fastapi and uvicorn: pip install 'posttrain[serve]'") from None
    from posttrain.generation.factory import make_backend
    from posttrain.generation.server.app import build_app

    check_serve_args(args)
    sock = bind(args.host, args.port)
    backend = make_backend(args.model, "hf", args.batch_size, 0, args.dtype)
    backend.show_progress = False
    names = list(dict.fromkeys([args.name or args.model, args.model]))  # MODEL as given stays an alias
    app = build_app(backend, names, args.batch_size, args.batch_wait_ms / 1000, args.request_timeout)
    print(f"serving {args.model} as '{names[0]}' at http://{args.host}:{args.port}/v1", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    return 0
