"""`posttrain quantize` (one model) and `posttrain quantize-study` (the low-bit study's table)."""

from __future__ import annotations


def _int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def add_parsers(subparsers) -> None:
    q = subparsers.add_parser(
        "quantize",
        help="weight-only quantisation (simulated: dequantised weights in a float model directory that eval loads)",
    )
    q.add_argument("model", help="model directory or 'tiny'")
    q.add_argument("--method", default="rtn", choices=["rtn", "nf4", "int8", "gptq", "awq"])
    q.add_argument("--bits", type=int, default=4, help="rtn: 2..8; nf4: 4; int8: 8")
    q.add_argument(
        "--group-size",
        type=int,
        help="weights per scale along the input dimension (rtn default: a whole row; nf4 default 64; int8: rows only)",
    )
    q.add_argument("--out", required=True, help="output model directory")
    q.add_argument("--overwrite", action="store_true", help="replace --out even when it holds something else")
    q.set_defaults(tool_run=_quantize)

    s = subparsers.add_parser("quantize-study", help="perplexity and task accuracy per method x bits")
    s.add_argument("model", help="model directory or 'tiny'")
    s.add_argument("--text", required=True, help="text file (jsonl 'text' rows) for perplexity")
    s.add_argument(
        "--task-data",
        required=True,
        help="prompt/reference rows, scored by exact match (e.g. the quickstart's test.jsonl)",
    )
    s.add_argument(
        "--answer",
        default="final_number",
        choices=["final_number", "text"],
        help="what is compared with the reference: the last number, or the whole answer",
    )
    s.add_argument("--max-new-tokens", type=int, default=64)
    s.add_argument("--methods", default="rtn,nf4,int8,gptq,awq")
    s.add_argument("--bits", type=_int_list, default=[8, 4, 3, 2], help="comma-separated, e.g. 8,4,3,2")
    s.add_argument("--group-size", type=int, default=64)
    s.add_argument("--limit", type=int, default=200, help="documents per task")
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("--out", help="directory for study.json and study.md")
    s.set_defaults(tool_run=_study)


def _quantize(args) -> int:
    from posttrain.quantize.run import check_arguments, quantize_model

    check_arguments(args.method, args.bits, args.group_size)  # before any file is read
    print(quantize_model(args.model, args.out, args.method, args.bits, args.group_size, args.overwrite))
    return 0


def _study(args) -> int:
    from posttrain.errors import UserError
    from posttrain.quantize.run import METHODS
    from posttrain.quantize.study import run_study, table, write_study

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise UserError(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    rows = run_study(
        args.model,
        args.text,
        args.task_data,
        methods,
        args.bits,
        args.group_size,
        args.limit,
        args.batch_size,
        args.answer,
        args.max_new_tokens,
    )
    print(table(rows))
    if args.out:
        print(write_study(args.out, rows))
    return 0
