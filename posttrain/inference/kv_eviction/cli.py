"""`posttrain kv ...`: KV-cache eviction with chunked prefill (StreamingLLM, H2O, Locret).

    posttrain kv make-data --out data/kv-needle                 # needle-in-a-haystack train/test rows
    posttrain kv train-heads MODEL --data data/kv-needle/heads.jsonl --out heads.safetensors
    posttrain kv eval MODEL --data data/kv-needle/test.jsonl --method full,streaming,h2o,locret,random \\
        --budget 32,64 --heads heads.safetensors [--out results.json]
"""

from __future__ import annotations

import argparse
import json


def add_parsers(subparsers) -> None:
    kv = subparsers.add_parser(
        "kv",
        help="KV-cache eviction during chunked prefill (StreamingLLM, H2O, Locret)",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = kv.add_subparsers(dest="kv_command", required=True)
    d = sub.add_parser(
        "make-data",
        help="write the generated needle-in-a-haystack rows: train.jsonl (text), "
        "sft_train.jsonl (chat), heads.jsonl and test.jsonl (chat prompt + answer)",
    )
    d.add_argument("--out", required=True, help="output directory")
    d.add_argument("--train", type=int, default=30000, help="pre-training text rows (1..--sentences haystacks)")
    d.add_argument("--heads", type=int, default=200, help="rows for training Locret's retaining heads")
    d.add_argument("--test", type=int, default=200, help="test rows (haystacks of exactly --sentences)")
    d.add_argument("--sentences", type=int, default=8, help="haystack sentences of the longest rows")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(tool_run=run_make_data)

    t = sub.add_parser("train-heads", help="train Locret's retaining heads on a frozen model")
    t.add_argument("model", help="model directory, hub id, or 'tiny'")
    t.add_argument("--data", required=True, help="JSONL rows with 'prompt' and 'answer'")
    t.add_argument("--out", required=True, help="safetensors file for the heads")
    t.add_argument("--steps", type=int, default=600)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--hidden", type=int, default=256, help="width of each retaining head")
    t.add_argument("--alpha", type=float, default=0.025, help="weight of the smoothness term")
    t.add_argument("--limit", type=int, help="use at most this many rows")
    t.set_defaults(tool_run=run_train_heads)

    e = sub.add_parser("eval", help="accuracy and K/V memory of eviction methods at fixed budgets")
    e.add_argument("model", help="model directory, hub id, or 'tiny'")
    e.add_argument("--data", required=True, help="JSONL rows with 'prompt' and 'answer'")
    e.add_argument(
        "--method",
        default="full,streaming,h2o,locret,random",
        help="comma-separated: full, streaming, h2o, locret, random",
    )
    e.add_argument("--budget", default="64", help="comma-separated cache units kept per KV head")
    e.add_argument("--sinks", type=int, default=4, help="StreamingLLM's attention sinks")
    e.add_argument("--recent", type=int, default=8, help="newest units always kept by H2O, Locret, random")
    e.add_argument("--chunk", type=int, default=32, help="prefill chunk length")
    e.add_argument("--heads", help="retaining heads from `posttrain kv train-heads` (needed by locret)")
    e.add_argument("--limit", type=int, help="evaluate at most this many rows")
    e.add_argument("--seed", type=int, default=0, help="seed of the random-eviction control")
    e.add_argument("--out", help="also write the results as JSON to this file")
    e.set_defaults(tool_run=run_eval)


def _positive(value: int | None, flag: str) -> None:
    from posttrain.errors import UserError

    if value is not None and value < 1:
        raise UserError(f"{flag} {value}: expected an integer >= 1")


def run_make_data(args: argparse.Namespace) -> int:
    from pathlib import Path

    from posttrain.inference.kv_eviction.needle import needle_rows, write_jsonl

    for value, flag in (
        (args.train, "--train"),
        (args.heads, "--heads"),
        (args.test, "--test"),
        (args.sentences, "--sentences"),
    ):
        _positive(value, flag)
    out = Path(args.out)
    train = needle_rows(args.train, args.seed, 1, args.sentences)
    print(write_jsonl([{"text": r["text"]} for r in train], out / "train.jsonl"))
    print(write_jsonl([{"messages": r["messages"]} for r in train], out / "sft_train.jsonl"))
    for name, rows in (
        ("heads", needle_rows(args.heads, args.seed + 1, 1, args.sentences)),
        ("test", needle_rows(args.test, args.seed + 2, args.sentences, args.sentences)),
    ):
        print(
            write_jsonl(
                [
                    {
                        "prompt": r["chat_prompt"],
                        "answer": r["answer"],
                        "needle_sentence": r["needle_sentence"],
                        "sentences": r["sentences"],
                    }
                    for r in rows
                ],
                out / f"{name}.jsonl",
            )
        )
    return 0


def _load(model_path: str):
    from posttrain.inference.kv_eviction.attention import use_recording_attention
    from posttrain.model.inference import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(model_path)
    model.eval()
    use_recording_attention(model)  # eager attention that H2O and Locret's labels can read
    return model, tokenizer


def run_train_heads(args: argparse.Namespace) -> int:
    from pathlib import Path

    from posttrain.inference.kv_eviction.evaluate import encode_items
    from posttrain.inference.kv_eviction.locret import save_heads, train_heads
    from posttrain.inference.kv_eviction.needle import read_items

    for value, flag in ((args.steps, "--steps"), (args.hidden, "--hidden"), (args.limit, "--limit")):
        _positive(value, flag)
    items = read_items(args.data, args.limit)
    model, tokenizer = _load(args.model)
    heads, losses = train_heads(
        model, encode_items(tokenizer, items), args.steps, args.lr, args.hidden, args.alpha, progress=True
    )
    window = max(1, len(losses) // 10)
    print(
        f"loss: first {window} steps {sum(losses[:window]) / window:.4f}, "
        f"last {window} steps {sum(losses[-window:]) / window:.4f}"
    )
    print(save_heads(heads, Path(args.out)))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from posttrain.checkpoint.io import write_text_atomically
    from posttrain.errors import UserError
    from posttrain.inference.kv_eviction.evaluate import (
        encode_items,
        evaluate_policy,
        policies_at,
    )
    from posttrain.inference.kv_eviction.needle import read_items
    from posttrain.inference.kv_eviction.policies import METHODS, check_policy

    methods = tuple(m.strip() for m in args.method.split(",") if m.strip())
    try:
        budgets = [int(b) for b in args.budget.split(",") if b.strip()]
    except ValueError:
        raise UserError(f"--budget {args.budget!r}: expected comma-separated integers") from None
    _positive(args.chunk, "--chunk")
    _positive(args.limit, "--limit")
    if "locret" in methods and not args.heads:
        raise UserError("--method locret needs --heads FILE (from `posttrain kv train-heads`)")
    items = read_items(args.data, args.limit)
    model, tokenizer = _load(args.model)
    encoded = encode_items(tokenizer, items)
    shortest = min(len(p) for p, _ in encoded)
    grid = [p for b in budgets for p in policies_at(b, args.sinks, args.recent, methods, args.seed)]
    for policy in grid:  # every bad budget is reported before any work starts
        if policy.method not in METHODS:
            raise UserError(f"--method {policy.method!r}: choose one of {', '.join(METHODS)}")
        check_policy(policy, shortest)
    heads = None
    if args.heads:
        from posttrain.inference.kv_eviction.locret import load_heads

        heads = load_heads(args.heads)
    rows, seen_full = [], False
    for policy in grid:
        if policy.method == "full" and seen_full:
            continue
        seen_full |= policy.method == "full"
        rows.append(evaluate_policy(model, encoded, policy, args.chunk, heads, progress=True))
    print(f"{'method':<10} {'budget':>6} {'accuracy':>9} {'K/V bytes held':>15} {'peak':>10} {'of full':>8}")
    for r in rows:
        print(
            f"{r['method']:<10} {str(r['budget'] or '-'):>6} {r['accuracy']:>9.3f} "
            f"{r['kv_bytes_after_prefill']:>15.0f} {r['kv_bytes_peak']:>10.0f} {r['kv_fraction_of_full']:>8.3f}"
        )
    if args.out:
        write_text_atomically(
            Path(args.out), json.dumps({"model": args.model, "data": args.data, "results": rows}, indent=2) + "\n"
        )
    return 0
