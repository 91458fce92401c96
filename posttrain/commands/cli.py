"""Commands that drive stages and tools together: `posttrain iterate` (this module only builds the
parser; the work is imported when the command runs)."""

from __future__ import annotations

import argparse


def add_parsers(subparsers) -> None:
    it = subparsers.add_parser(
        "iterate", help="K rounds of sample -> score -> pairs -> dpo -> eval (iterative on-policy DPO, SELM)"
    )
    it.add_argument("recipe", help="iterate recipe YAML (see posttrain/commands/iterate.py)")
    it.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    it.add_argument("--output-dir", help="default: the recipe's output_dir")
    it.set_defaults(tool_run=_iterate)


def _iterate(args: argparse.Namespace) -> int:
    from posttrain.commands.iterate import load_iterate_recipe, run_iterate

    run_iterate(load_iterate_recipe(args.recipe, args.overrides), args.output_dir)
    return 0
