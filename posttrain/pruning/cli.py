"""`posttrain prune RECIPE.yaml [--out DIR] [--set key=value]` (recipe: posttrain/pruning/recipe.py)."""

from __future__ import annotations


def add_parsers(subparsers) -> None:
    p = subparsers.add_parser(
        "prune",
        help="Puzzle: blockwise local distillation of cheaper blocks, "
        "MIP selection under a parameter budget, uptraining by distillation",
    )
    p.add_argument("recipe", help="prune recipe YAML (model, calibration, alternatives, budget, ...)")
    p.add_argument("--out", help="output directory (default: the recipe's output)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe key, e.g. --set budget=0.6",
    )
    p.set_defaults(tool_run=_run)


def _run(args) -> int:
    from posttrain.config.tool_recipe import load_tool_recipe
    from posttrain.pruning.recipe import PruneRecipe
    from posttrain.pruning.run import run_prune

    print(run_prune(load_tool_recipe(PruneRecipe, args.recipe, args.overrides), args.out))
    return 0
