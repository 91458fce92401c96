"""`posttrain synth METHOD [RECIPE.yaml] [--set KEY=VALUE]`: one sub-command per paper's recipe.

Each module in METHOD_MODULES defines NAME, HELP, Recipe and run(recipe) (see
tool_recipe.add_recipe_tool); adding a method is one line here. Modules import nothing heavy at
top level (torch inside run).
"""

from __future__ import annotations

from posttrain.config.tool_recipe import add_recipe_tool

METHOD_MODULES: tuple[str, ...] = (
    "posttrain.synthesis.arithmetic",
    "posttrain.synthesis.toy_tasks",
    "posttrain.synthesis.skillmix",
    "posttrain.synthesis.teacher_distill",
    "posttrain.synthesis.weak_to_strong",
    "posttrain.synthesis.spar",
    "posttrain.synthesis.llama_guard",
    "posttrain.synthesis.self_eval",
    "posttrain.synthesis.magpie",
    "posttrain.synthesis.non_instructional",
    "posttrain.synthesis.fusechat",
)


def add_parsers(subparsers) -> None:
    add_recipe_tool(subparsers, "synth", "make training data with a seed paper's recipe", METHOD_MODULES)
