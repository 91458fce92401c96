"""Commands of the generation layer: `posttrain sample`, `posttrain data concat`, `posttrain serve`
(this module only builds parsers: the work is imported when a command runs).

    posttrain data concat SHARD_0.jsonl SHARD_1.jsonl ... --out ALL.jsonl

joins the outputs of `--shard 0/K` ... `--shard K-1/K` of one job (any order on the command line)
in row order, with one manifest summing their counts and failures.
"""

from __future__ import annotations

import argparse

from posttrain.errors import UserError


def add_parsers(subparsers) -> None:
    from posttrain.generation.sample import add_sample_parser

    add_sample_parser(subparsers)
    subparsers.choices["sample"].set_defaults(tool_run=_sample)
    add_serve_parser(subparsers)
    subparsers.choices["serve"].set_defaults(tool_run=_serve)
    data = subparsers.add_parser("data", help="data-file tools (concat: join the shards of a job)")
    verbs = data.add_subparsers(dest="data_command", required=True)
    concat = verbs.add_parser("concat", help="join the outputs of --shard 0/K ... K-1/K into one file")
    concat.add_argument("shards", nargs="+", help="the shards' output files")
    concat.add_argument("--out", required=True)
    concat.set_defaults(tool_run=_concat)


def add_serve_parser(subparsers) -> None:
    p = subparsers.add_parser("serve", help="an OpenAI-compatible server for a local model (127.0.0.1)")
    p.add_argument("model", help="model or adapter directory, hub id or 'tiny'")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--name", help="the model's id in /v1/models (default: MODEL as given)")
    p.add_argument("--batch-size", type=int, default=16, help="completions generated together")
    p.add_argument(
        "--batch-wait-ms",
        type=float,
        default=5.0,
        help="how long the batcher collects concurrent requests before generating",
    )
    p.add_argument(
        "--request-timeout", type=float, default=600.0, help="seconds a request may wait and run before it is cancelled"
    )
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])


def _sample(args: argparse.Namespace) -> int:
    from posttrain.generation.sample import sample_command

    return sample_command(args)


def _serve(args: argparse.Namespace) -> int:
    from posttrain.generation.server.command import serve_command

    return serve_command(args)


def _concat(args: argparse.Namespace) -> int:
    from pathlib import Path

    from posttrain.data.jobs import concat_shards, manifest_path

    if not args.shards:
        raise UserError("data concat needs the shards' output files")
    merged = concat_shards(args.shards, args.out)
    print(
        f"wrote {merged['counts']['rows_out']} rows from {len(args.shards)} shards to {args.out} "
        f"(manifest: {manifest_path(Path(args.out))})"
    )
    return 1 if merged["failures"] else 0
