"""`posttrain merge RECIPE.yaml [--out DIR] [--set key=value]` (recipe: posttrain/merging/recipe.py)."""

from __future__ import annotations


def add_parsers(subparsers) -> None:
    p = subparsers.add_parser(
        "merge",
        help="merge models (soup, task arithmetic, TIES, DARE, SLERP, "
        "instruction residuals, checkpoint soup) into one model directory",
    )
    p.add_argument("recipe", help="merge recipe YAML (method, models, base, ...)")
    p.add_argument("--out", help="output model directory (default: the recipe's output)")
    p.add_argument("--overwrite", action="store_true", help="replace the output even when it holds something else")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe key, e.g. --set density=0.3",
    )
    p.set_defaults(tool_run=_run)

    q = subparsers.add_parser(
        "cycleqd",
        help="CycleQD: quality-diversity search over merges of "
        "per-task experts (MAP-Elites, merge crossover, SVD mutation)",
    )
    q.add_argument("recipe", help="cycleqd recipe YAML (base, experts, tasks, generations, ...)")
    q.add_argument("--out", help="output directory (default: the recipe's output)")
    q.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    q.set_defaults(tool_run=_cycleqd)


def _run(args) -> int:
    from posttrain.merging.recipe import load_merge_recipe
    from posttrain.merging.run import run_merge

    recipe = load_merge_recipe(args.recipe, args.overrides)
    print(run_merge(recipe, args.out, args.overwrite))
    return 0


def _cycleqd(args) -> int:
    from posttrain.merging import cycleqd_run
    from posttrain.merging.recipe import CycleQDRecipe, load_yaml_recipe

    recipe = load_yaml_recipe(args.recipe, CycleQDRecipe, args.overrides)
    print(cycleqd_run.table(cycleqd_run.run(recipe, args.out)))
    return 0
