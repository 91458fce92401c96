"""`posttrain surgery ...`: commands that write a changed model directory transformers loads.

    posttrain surgery expand MODEL --every 2 --out DIR      # LLaMA Pro block expansion
    posttrain surgery expand MODEL --blocks 0,3 --out DIR
"""

from __future__ import annotations

import argparse


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{text}'") from None


def add_parsers(subparsers) -> None:
    surgery = subparsers.add_parser("surgery", help="change a model's architecture (block expansion, "
                                    "vocabulary extension, LEP)")
    sub = surgery.add_subparsers(dest="surgery_command", required=True)

    e = sub.add_parser("expand", help="LLaMA Pro block expansion: insert zero-output copies of blocks")
    e.add_argument("model", help="model directory, hub id, or 'tiny'")
    where = e.add_mutually_exclusive_group(required=True)
    where.add_argument("--blocks", type=_int_list, help="copy these blocks (0-based, e.g. 1,3); each "
                       "copy goes right after its original")
    where.add_argument("--every", type=int, help="the paper's interleaving: a copy after every K-th block")
    e.add_argument("--out", required=True, help="output model directory")
    e.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    e.set_defaults(tool_run=run_expand)


def load_for_surgery(model: str, dtype: str = "float32"):
    """(model, tokenizer, resolved path), loaded as every stage loads a model (one-line errors)."""
    from posttrain.config import ModelConfig
    from posttrain.model.load import instantiate, load_tokenizer

    loaded = instantiate(ModelConfig(path=model, dtype=dtype))
    return loaded.model, load_tokenizer(loaded.path), loaded.path


def run_expand(args) -> int:
    from posttrain.checkpoint.io import save_model_dir
    from posttrain.surgery.expand import decoder_layers, expand_blocks, insertion_points

    model, tokenizer, _ = load_for_surgery(args.model, args.dtype)
    after = insertion_points(len(decoder_layers(model)), args.blocks, args.every)
    new = expand_blocks(model, after)
    out = save_model_dir(args.out, model, tokenizer)
    print(f"{out}: {model.config.num_hidden_layers} blocks, new (zero-output) blocks at {new}")
    return 0
