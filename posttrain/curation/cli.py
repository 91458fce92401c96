"""`posttrain curate STEP [RECIPE.yaml] [--set KEY=VALUE]`: one sub-command per curation step.

Each module in STEP_MODULES defines NAME, HELP, Recipe and run(recipe) (see
tool_recipe.add_recipe_tool); adding a step is one line here. Modules import nothing heavy at
top level (torch inside run).
"""

from __future__ import annotations

from posttrain.config.tool_recipe import add_recipe_tool

STEP_MODULES: tuple[str, ...] = (
    "posttrain.curation.decontaminate",
    "posttrain.curation.dedup",
    "posttrain.curation.filter",
    "posttrain.curation.embed_dedup",
    "posttrain.curation.ches",
)


def add_parsers(subparsers) -> None:
    add_recipe_tool(subparsers, "curate", "clean a data file: decontaminate, dedup, CHES, filters", STEP_MODULES)
