"""Typed recipes for one-shot tools (`posttrain synth METHOD`, `posttrain curate STEP`).

    posttrain synth magpie RECIPE.yaml --set n_rows=500
    posttrain curate dedup --set input=train.jsonl --set out=clean.jsonl

A tool's recipe is one `Section` (pydantic, extra keys forbidden). The YAML file is optional: the
section's defaults plus `--set KEY=VALUE` overrides are a whole recipe. The file is read by
strict_yaml (duplicate keys, tags, non-UTF-8 are one-line errors) and validated before any work.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from posttrain.config.recipe import Section, apply_override, describe_validation_error
from posttrain.config.strict_yaml import read_yaml
from posttrain.errors import UserError

S = TypeVar("S", bound=Section)


def add_recipe_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", nargs="?", help="recipe YAML file (optional: defaults + --set)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a recipe key (dotted, typed as YAML), e.g. --set seed=1",
    )
    p.add_argument("--out", help="the output path (same as --set out=PATH)")


def load_tool_recipe(section: type[S], path: str | None, overrides: list[str] = ()) -> S:
    """The recipe file (or {} without one) with the overrides applied, validated as `section`."""
    raw: dict = {}
    label = str(path) if path else "recipe"
    if path is not None:
        if not Path(path).is_file():
            raise UserError(f"{path}: recipe file not found")
        raw = read_yaml(Path(path))
        if not isinstance(raw, dict):
            raise UserError(f"{path}: a recipe is a mapping of keys, got {type(raw).__name__}")
    for item in overrides:
        apply_override(raw, item)
    try:
        return section.model_validate(raw)
    except ValidationError as err:
        raise UserError(describe_validation_error(err.errors()[0], label, section)) from None


def add_recipe_tool(subparsers, command: str, help_text: str, modules: tuple[str, ...]) -> None:
    """`posttrain COMMAND NAME [RECIPE.yaml] [--set ...]` with one sub-command per module.

    Each module defines NAME (the sub-command), HELP (one line), Recipe (a Section: its typed
    recipe) and run(recipe) -> int | None; its docstring is the sub-command's description."""
    import importlib

    p = subparsers.add_parser(command, help=help_text, description=help_text)
    names = p.add_subparsers(dest=f"{command}_name", metavar="NAME", required=True)
    for path in modules:
        module = importlib.import_module(path)
        sub = names.add_parser(
            module.NAME,
            help=module.HELP,
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_recipe_arguments(sub)
        sub.set_defaults(tool_run=_runner(module))


def _runner(module):
    def run(args: argparse.Namespace) -> int | None:
        overrides = [*args.overrides, *([f"out={args.out}"] if args.out else [])]
        return module.run(load_tool_recipe(module.Recipe, args.recipe, overrides))

    return run
