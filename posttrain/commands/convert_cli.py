"""`posttrain convert gguf FILE.gguf --out DIR`: a GGUF file into a Hugging Face model directory."""

from __future__ import annotations


def add_parsers(subparsers) -> None:
    c = subparsers.add_parser("convert", help="convert a model file into a Hugging Face directory")
    formats = c.add_subparsers(dest="convert_format", required=True)
    g = formats.add_parser("gguf", help="a GGUF file (weights dequantised to float32)")
    g.add_argument("gguf_file", help="the .gguf file")
    g.add_argument("--out", required=True, help="output model directory (must not exist, or be empty)")
    g.set_defaults(tool_run=_convert_gguf)


def _convert_gguf(args) -> int:
    from posttrain.model.gguf_convert import convert_gguf

    print(convert_gguf(args.gguf_file, args.out))
    return 0
