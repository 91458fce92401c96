"""`posttrain surgery ...`: commands that write a changed model directory transformers loads.

posttrain surgery expand MODEL --every 2 --out DIR      # LLaMA Pro block expansion
posttrain surgery expand MODEL --blocks 0,3 --out DIR
posttrain surgery make-language --out DIR                # synthetic second language (Nordl)
posttrain surgery extend-vocab MODEL --corpus DIR/train.jsonl --num-tokens 200 --out DIR2
posttrain surgery lep --base B --adapted A --instruct I --method projection --out DIR3
"""

from __future__ import annotations

import argparse


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{text}'") from None


def add_parsers(subparsers) -> None:
    surgery = subparsers.add_parser(
        "surgery", help="change a model's architecture (block expansion, vocabulary extension, LEP)"
    )
    sub = surgery.add_subparsers(dest="surgery_command", required=True)

    e = sub.add_parser("expand", help="LLaMA Pro block expansion: insert zero-output copies of blocks")
    e.add_argument("model", help="model directory, hub id, or 'tiny'")
    where = e.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--blocks",
        type=_int_list,
        help="copy these blocks (0-based, e.g. 1,3); each copy goes right after its original",
    )
    where.add_argument("--every", type=int, help="the paper's interleaving: a copy after every K-th block")
    e.add_argument("--out", required=True, help="output model directory")
    e.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    e.set_defaults(tool_run=run_expand)
    _vocab_parsers(sub)
    for command in sub.choices.values():
        command.add_argument("--overwrite", action="store_true", help="replace --out even when it holds something else")


def _vocab_parsers(sub) -> None:
    from posttrain.surgery import vocab_cli  # no heavy imports at module level

    m = sub.add_parser("make-language", help="write the synthetic second language (train/held-out text)")
    m.add_argument("--out", required=True, help="directory for train.jsonl and heldout.jsonl")
    m.add_argument("--train", type=int, default=2000, help="training sentences")
    m.add_argument("--heldout", type=int, default=200, help="held-out sentences")
    m.set_defaults(tool_run=vocab_cli.run_make_language)

    v = sub.add_parser("extend-vocab", help="add tokens for a new language and initialise their embeddings")
    v.add_argument("model", help="model directory, hub id, or 'tiny'")
    source = v.add_mutually_exclusive_group(required=True)
    source.add_argument("--corpus", help="text file or .jsonl with a 'text' field: train new BPE merges on it")
    source.add_argument("--tokens", help="file with one new token per line (added as added tokens)")
    v.add_argument("--num-tokens", type=int, default=1000, help="how many merges to add (with --corpus)")
    v.add_argument(
        "--keep",
        help="text file or .jsonl whose tokenisation must not change, e.g. English "
        "samples (the chat template's always stays)",
    )
    v.add_argument(
        "--init",
        default="mean",
        choices=["mean", "mean_all", "random"],
        help="new rows: mean of the old pieces' rows (default), mean of all rows, or random",
    )
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--out", required=True, help="output model directory")
    v.set_defaults(tool_run=vocab_cli.run_extend_vocab)

    p = sub.add_parser("lep", help="Learned Embedding Propagation: an adapted base's vocabulary into an instruct model")
    p.add_argument("--base", required=True, help="the base model the instruct model was tuned from")
    p.add_argument("--adapted", required=True, help="the base after vocabulary extension and embedding training")
    p.add_argument("--instruct", required=True, help="the instruct model to receive the new vocabulary")
    p.add_argument("--method", default="projection", choices=["swap", "overlap", "projection"])
    p.add_argument("--out", required=True, help="output model directory")
    p.set_defaults(tool_run=vocab_cli.run_lep)


def run_expand(args) -> int:
    from posttrain.model.surgery.expand import decoder_layers, expand_blocks, insertion_points
    from posttrain.surgery.loading import load_for_surgery, save_surgery_output, surgery_inputs

    inputs = surgery_inputs(args, args.model)
    model, tokenizer, _ = load_for_surgery(args.model, args.dtype)
    after = insertion_points(len(decoder_layers(model)), args.blocks, args.every)
    new = expand_blocks(model, after)
    out = save_surgery_output(args, inputs, model, tokenizer)
    print(f"{out}: {model.config.num_hidden_layers} blocks, new (zero-output) blocks at {new}")
    return 0
