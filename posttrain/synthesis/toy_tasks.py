"""The tiny recipes' other tasks (no model needed): parity and size questions (SFT rows, held-out
test rows, preference pairs) and REFUEL's two-turn colour dialogues.

    posttrain synth toy-tasks --out data/toy
"""

from __future__ import annotations

from posttrain.config.base import Section

NAME = "toy-tasks"
HELP = "parity/size questions and colour dialogues for the tiny recipes (no model needed)"


class Recipe(Section):
    out: str  # output directory
    seed: int = 0


def run(recipe: Recipe) -> int:
    from posttrain.data.synth.toy_tasks import write_toy_tasks

    for name, path in write_toy_tasks(recipe.out, seed=recipe.seed).items():
        print(f"{name}: {path}")
    return 0
