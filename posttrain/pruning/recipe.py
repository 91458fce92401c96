"""The prune recipe (`posttrain prune RECIPE.yaml`): closed and typed, checked before any weights
load (posttrain/pruning/run.py runs it).

    model: runs/tiny-sft/final            # the parent: a Llama causal LM
    calibration:                          # conversations the blocks imitate the parent on
      - {path: data/sft_train.jsonl}
    alternatives: {attention: [kv1, noop], ffn: [ffn50, ffn25, noop]}
    budget: 0.7                           # share of the parent's parameters the result may have
    kv_budget: null                       # optional: share of the parent's KV cache (sum of KV heads)
    bld_steps: 300                        # local distillation steps per alternative
    output: runs/tiny-pruned
    uptrain: {...}                        # optional: a `posttrain distill` recipe (model and
                                          # distill.teacher are filled in: the selection, the parent)
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from posttrain.config.base import NonNegative, Positive, PositiveFloat, Section
from posttrain.config.recipe import Recipe, SourceConfig

Share = Annotated[float, Field(gt=0, le=1)]


class Alternatives(Section):
    attention: list[str] = ["kv1", "noop"]  # kvN | noop (the parent's attention is always a candidate)
    ffn: list[str] = ["ffn50", "ffn25", "noop"]  # ffnP | noop (the parent's FFN is always a candidate)


class PruneRecipe(Section):
    model: str
    calibration: list[SourceConfig]
    calibration_tokens: Positive = 32768  # tokens of calibration used (training + held-out)
    sequence_length: Positive = 128  # calibration is packed into blocks of this many tokens
    holdout_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.25  # blocks kept for scoring
    batch_size: Positive = 16  # blocks per forward
    alternatives: Alternatives = Alternatives()
    budget: Share  # parameters of the result / the parent's
    kv_budget: Share | None = None  # sum of KV heads of the result / the parent's
    bld_steps: NonNegative = 300
    bld_lr: PositiveFloat = 1e-3
    seed: NonNegative = 0
    dtype: Literal["float32", "bfloat16"] = "float32"  # of the parent while pruning and of the result
    output: str | None = None
    uptrain: Recipe | None = None
