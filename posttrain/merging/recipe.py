"""The merge recipe (`posttrain merge RECIPE.yaml`): a closed, typed schema checked before any
weights load.

    method: ties                  # linear | task_arithmetic | ties | dare | slerp |
                                  # instruction_residual | checkpoint_soup
    base: runs/base/final         # task_arithmetic, ties, dare, instruction_residual
    models:
      - {path: runs/math/final, weight: 0.5}
      - {path: runs/code/final, weight: 0.5}
    density: 0.5                  # ties, dare: the share of each task vector kept
    output: runs/merged
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import field_validator, model_validator

from posttrain.config.recipe import Section
from posttrain.config.tool_recipe import load_tool_recipe

NEEDS_BASE = ("task_arithmetic", "ties", "dare", "instruction_residual")


class MergeModel(Section):
    path: str
    weight: float = 1.0


class MergeRecipe(Section):
    method: Literal["linear", "task_arithmetic", "ties", "dare", "slerp", "instruction_residual", "checkpoint_soup"]
    models: list[MergeModel] = []  # instruction_residual: [the instruct model]
    base: str | None = None  # the model the task vectors are taken against
    target: str | None = None  # instruction_residual: the continued-pre-trained base receiving it
    run_dir: str | None = None  # checkpoint_soup: a run directory holding checkpoints/step-*
    last: int | None = None  # checkpoint_soup: only the newest `last` checkpoints (default: all)
    density: float = 1.0  # ties, dare: share of each task vector's entries kept
    dare_combine: Literal["linear", "ties"] = "linear"
    normalize: bool = True  # linear, ties: divide by the (agreeing) weights' sum
    scale: float = 1.0  # lambda on the combined task vector / the residual
    t: float = 0.5  # slerp: 0 = models[0], 1 = models[1]
    seed: int = 0  # dare's drop masks
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"  # of the saved weights
    output: str | None = None  # default: --out

    @field_validator("models", mode="before")
    @classmethod
    def _paths_as_models(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"path": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("density", "t")
    @classmethod
    def _unit_interval(cls, value: float) -> float:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"must be in [0, 1], got {value}")
        return value

    @field_validator("last")
    @classmethod
    def _positive(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(f"must be >= 1, got {value}")
        return value

    @model_validator(mode="after")
    def _method_needs(self) -> MergeRecipe:
        m, n = self.method, len(self.models)
        if m in NEEDS_BASE and not self.base:
            raise ValueError(
                f"method {m} needs a base model (base: PATH), the model its task vectors are taken against"
            )
        if m == "instruction_residual" and (n != 1 or not self.target):
            raise ValueError(
                "method instruction_residual needs models: [INSTRUCT] (one model), "
                "base: BASE and target: CONTINUED_PRETRAINED_BASE"
            )
        if m == "slerp" and n != 2:
            raise ValueError(f"method slerp merges exactly 2 models, got {n}")
        if m == "checkpoint_soup" and (not self.run_dir or n):
            raise ValueError("method checkpoint_soup takes run_dir: RUN (its checkpoints/step-*), not models")
        if m in ("linear", "task_arithmetic", "ties", "dare") and n < 1:
            raise ValueError(f"method {m} needs at least one entry under models")
        if m in ("ties", "dare") and self.density == 0:
            raise ValueError(f"method {m}: density 0 would drop every task vector entry")
        return self


def load_merge_recipe(path: str | Path, overrides: list[str] = ()) -> MergeRecipe:
    return load_yaml_recipe(path, MergeRecipe, overrides)


class QDTask(Section):
    """One CycleQD task: prompts with references, scored by exact match of the generated answer."""

    data: str
    answer: Literal["final_number", "text"] = "text"
    max_new_tokens: int = 16
    name: str | None = None  # default: the file name


class CycleQDRecipe(Section):
    """`posttrain cycleqd RECIPE.yaml`: experts (one per task, fine-tunes of `base`), their tasks
    in the same order, and the search's settings (posttrain/merging/cycleqd.py)."""

    base: str
    experts: list[str]
    tasks: list[QDTask]
    generations: int = 12
    bins: int = 4
    mu: float = 0.5  # crossover weights ~ N(mu, sigma_crossover)
    sigma_crossover: float = 0.1
    sigma_mutation: float = 0.05
    limit: int | None = 40  # prompts per task evaluation
    seed: int = 0
    output: str | None = None

    @model_validator(mode="after")
    def _one_task_per_expert(self) -> CycleQDRecipe:
        if len(self.experts) < 2 or len(self.experts) != len(self.tasks):
            raise ValueError(
                f"cycleqd needs >= 2 experts and one task per expert "
                f"(got {len(self.experts)} experts, {len(self.tasks)} tasks)"
            )
        return self


def load_yaml_recipe(path: str | Path, schema: type[Section], overrides: list[str] = ()) -> Section:
    """Read, override (`--set key=value`) and validate a tool recipe (tool_recipe.load_tool_recipe:
    strict YAML, so duplicate keys and tags are one-line errors too)."""
    return load_tool_recipe(schema, str(path), overrides)
