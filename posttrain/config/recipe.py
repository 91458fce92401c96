"""The recipe: a typed, closed schema read from YAML, with `--set key=value` overrides.

Closed means an unknown key is an error that names the nearest valid key (a misspelled key must
never fall back silently to a default). Every default lives here or in config/methods.py (the
method stages' sections), nowhere in the code that reads them.
"""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from posttrain.config.base import (  # noqa: F401
    DEFAULT_MAX_ROW_BYTES,
    Beta,
    NonNegative,
    NonNegFloat,
    Positive,
    PositiveFloat,
    Ratio,
    Section,
)
from posttrain.config.methods import (  # noqa: F401
    DistillSection,
    GrpoSection,
    PreferenceSection,
    RewardSection,
    RewardTermConfig,
)
from posttrain.config.strict_yaml import read_yaml, yaml_problem
from posttrain.errors import UserError


class ModelConfig(Section):
    path: str = "tiny"  # "tiny" (the project's default tiny Llama), a local directory or a hub id
    init: Literal["pretrained", "random"] = "pretrained"  # random: fresh weights from path's config
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    attn_implementation: str = "sdpa"
    gradient_checkpointing: bool = False
    # Training forwards of Llama-style MLP and RMSNorm blocks that keep fewer tensors for backward:
    # the same values, about a third less activation memory (model/lean_layers.py).
    lean_layers: bool = True
    revision: str | None = None
    trust_remote_code: bool = False


class AdapterConfig(Section):
    """Parameter-efficient tuning through peft; kind none trains every weight."""

    # llama_pro: only the blocks `posttrain surgery expand` added (LLaMA Pro), see surgery/expand.py
    # llama_adapter_v2: gated prompts in the top prompt_layers + bias/scale + norms (surgery/llama_adapter.py)
    # control_llm: trainable copies of `blocks` run beside the frozen ones (surgery/control_llm.py)
    # embeddings: only input/output embeddings (after `posttrain surgery extend-vocab`)
    kind: Literal["none", "lora", "qlora", "dora", "llama_pro", "llama_adapter_v2", "control_llm", "embeddings"] = (
        "none"
    )
    r: Positive = 16
    alpha: PositiveFloat = 32.0
    # 0 by default: peft's dropout keeps a dropped-out copy of each adapted layer's input for
    # backward, which made LoRA cost more memory than full fine-tuning (docs/real_model.md)
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    target_modules: str | list[str] = "all-linear"  # or names, e.g. [q_proj, v_proj]
    modules_to_save: list[str] = []  # trained in full and saved, e.g. [embed_tokens, lm_head]
    prompt_length: Positive = 10  # llama_adapter_v2: prompt vectors per layer
    prompt_layers: Positive | None = None  # llama_adapter_v2: the top N layers get prompts (None: all)
    blocks: list[NonNegative] = []  # control_llm: blocks given a trainable copy ([]: all)
    mix: float = 0.5  # control_llm: weight a of the trained branch (checked in surgery/control_llm.py)
    learn_mix: bool = False  # control_llm: learn a (as sigmoid(t)) per block
    divergence_weight: NonNegFloat = 1.0  # control_llm: weight of the cosine divergence loss


class SourceConfig(Section):
    path: str
    kind: Literal["auto", "text", "conversation", "preference", "prompt"] = "auto"
    name: str | None = None  # mixture key; defaults to the file name without suffix
    weight: NonNegFloat = 1.0
    split: str | None = None  # for `datasets` directories holding a DatasetDict
    columns: dict[str, str] = {}  # rename fields before validation, e.g. {question: prompt}

    @property
    def key(self) -> str:
        return self.name or Path(self.path).name.split(".")[0]


class PhaseConfig(Section):
    """One curriculum phase of a pre-training mixture: source weights for `steps` optimizer steps."""

    steps: Positive | None = None  # None: until the end of training (last phase only)
    weights: dict[str, NonNegFloat]

    @field_validator("weights")
    @classmethod
    def _some_weight(cls, value: dict[str, float]) -> dict[str, float]:
        if not any(weight > 0 for weight in value.values()):
            raise ValueError(f"a phase needs at least one source weight > 0, got {value}")
        return value


class DataConfig(Section):
    sources: list[SourceConfig] = []
    eval_sources: list[SourceConfig] = []
    eval_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.0  # held-out share when no eval_sources
    phases: list[PhaseConfig] = []
    max_length: Positive | None = None  # default: the model's context length
    pack: bool | None = None  # default: True for pre-training, False for SFT
    # SFT without packing: micro-batches of similar lengths (less padding). Off by default: on data
    # whose length tracks its content (one template per length) it makes steps homogeneous and
    # slowed the quickstart's convergence (eval loss 0.95 vs 0.72 after 150 steps).
    group_by_length: bool = False
    on_error: Literal["fail", "skip"] = "fail"
    # A bad row above this size (a JSONL line's bytes, else its strings' UTF-8 bytes), found before
    # tokenising: one 10 MB row took 3.9 GB. 1 MiB ~ 250k tokens, past any context; null: no limit.
    max_row_bytes: Positive | None = DEFAULT_MAX_ROW_BYTES

    @field_validator("sources", "eval_sources", mode="before")
    @classmethod
    def _paths_as_sources(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            return [{"path": v} if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _some_source_weight(self) -> DataConfig:
        if self.sources and not any(s.weight > 0 for s in self.sources):
            raise ValueError("sources: every source weight is 0; at least one must be > 0")
        return self


class TrainConfig(Section):
    micro_batch_size: Positive = 8
    grad_accum_steps: Positive = 1
    max_steps: Positive | None = None  # wins over epochs when both are set
    epochs: NonNegFloat = 1.0
    lr: PositiveFloat = 2e-5
    weight_decay: NonNegFloat = 0.0
    betas: tuple[Beta, Beta] = (0.9, 0.95)
    schedule: Literal["constant", "linear", "cosine", "wsd"] = "cosine"
    warmup_steps: NonNegative = 0
    warmup_ratio: Ratio = 0.0  # used when warmup_steps is 0
    min_lr_ratio: Ratio = 0.0
    decay_ratio: Ratio = 0.1  # wsd: share of steps in the final decay
    max_grad_norm: NonNegFloat | None = 1.0  # 0 or null: no clipping
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    distributed: Literal["ddp", "fsdp"] = "ddp"  # with several processes: replicate or shard (FSDP2)
    log_every: Positive = 1
    eval_every: Positive | None = None  # steps; the final step is always evaluated when eval data exists
    save_every: NonNegative | None = None  # steps; 0 or null: only the final model
    keep_last: Positive = 2
    logprob_chunk_size: Positive = 256  # loss positions per LM-head chunk (x vocab floats live at once)
    # A step whose loss or gradient norm is inf/NaN (or whose gradient vanished): stop the run
    # naming the step, or skip its update (stops after 10 in a row). See train/guard.py.
    on_nonfinite: Literal["stop", "skip"] = "stop"

    @model_validator(mode="after")
    def _some_training(self) -> TrainConfig:
        if self.max_steps is None and self.epochs <= 0:
            raise ValueError(f"epochs must be > 0 when max_steps is not set, got {self.epochs}")
        return self


class EvalConfig(Section):
    """Evaluation at eval steps, through the evaluation engine (posttrain/eval): an exact-match
    task on the recipe's own prompt/reference file, and any built-in or YAML tasks."""

    task: Literal["exact_match"] | None = None
    data: str | None = None  # prompt records with a reference answer, for task: exact_match
    answer: Literal["final_number", "text"] = "final_number"  # what is compared with the reference
    tasks: list[str] = []  # built-in task names or task YAML files (`posttrain eval list`)
    limit: Positive | None = 200
    batch_size: Positive = 32
    max_new_tokens: Positive = 32

    @model_validator(mode="after")
    def _task_needs_data(self) -> EvalConfig:
        if self.task and not self.data:
            raise ValueError(f"eval.task '{self.task}' needs eval.data (prompts with references)")
        return self


class LogConfig(Section):
    tensorboard: bool = True
    wandb_project: str | None = None
    run_name: str | None = None


class Recipe(Section):
    stage: str | None = None  # informational; the CLI sub-command decides
    model: ModelConfig = ModelConfig()
    adapter: AdapterConfig = AdapterConfig()
    data: DataConfig = DataConfig()
    seed: Annotated[int, Field(ge=0, lt=2**32)] = 0  # numpy's seed range
    output_dir: str | None = None
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    preference: PreferenceSection = PreferenceSection()
    reward: RewardSection = RewardSection()
    grpo: GrpoSection = GrpoSection()
    distill: DistillSection = DistillSection()
    log: LogConfig = LogConfig()

    @field_validator("model", mode="before")
    @classmethod
    def _model_shorthand(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value

    @field_validator("data", mode="before")
    @classmethod
    def _data_shorthand(cls, value: Any) -> Any:
        return {"sources": value} if isinstance(value, (str, list)) else value

    @model_validator(mode="after")
    def _phases_name_sources(self) -> Recipe:
        known = {s.key for s in self.data.sources}
        for phase in self.data.phases:
            for key in phase.weights:
                if key not in known:
                    raise ValueError(f"data.phases names source '{key}', known: {sorted(known)}")
        return self


def load_recipe(path: str | Path | None, overrides: list[str] = ()) -> Recipe:
    """Read a recipe file (or start from defaults when path is None), apply overrides, validate."""
    raw: dict[str, Any] = {}
    label = str(path) if path else "recipe"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: recipe file not found")
        raw = read_yaml(path)
        if not isinstance(raw, dict):
            raise UserError(f"{path}: a recipe is a mapping of keys, got {type(raw).__name__}")
    _expand_shorthands(raw)
    for item in overrides:
        apply_override(raw, item)
        _expand_shorthands(raw)
    return validate_recipe(raw, label)


def _expand_shorthands(raw: dict[str, Any]) -> None:
    """Turn `model: path`, `data: path|list` and path-only sources into mappings, in place, so that
    dotted overrides can reach inside them."""
    if isinstance(raw.get("model"), str):
        raw["model"] = {"path": raw["model"]}
    if isinstance(raw.get("data"), (str, list)):
        raw["data"] = {"sources": raw["data"]}
    data = raw.get("data")
    for key in ("sources", "eval_sources"):
        if isinstance(data, dict) and isinstance(data.get(key), (str, list)):
            items = [data[key]] if isinstance(data[key], str) else data[key]
            data[key] = [{"path": v} if isinstance(v, str) else v for v in items]


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply one `dotted.key=value` (value parsed as YAML, so numbers and lists get their types)."""
    if "=" not in item:
        raise UserError(f"--set {item!r}: expected key=value")
    key, text = item.split("=", 1)
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as err:
        raise UserError(f"--set {item!r}: the value is not valid YAML: {yaml_problem(err)}") from None
    parts = key.strip().split(".")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        node = _child(node, part, parts[i + 1], key)
    last = parts[-1]
    if isinstance(node, list):
        node[_index(node, last, key)] = value
    else:
        node[last] = value


def _child(node: Any, part: str, next_part: str, key: str) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, key)]
    if not isinstance(node.get(part), (dict, list)):
        node[part] = [] if next_part.isdigit() else {}
    return node[part]


def _index(node: list, part: str, key: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise UserError(f"--set {key}: '{part}' is not an index of a list of {len(node)} items")
    return int(part)


def validate_recipe(raw: dict[str, Any], label: str = "recipe") -> Recipe:
    try:
        return Recipe.model_validate(raw)
    except ValidationError as err:
        raise UserError(describe_validation_error(err.errors()[0], label)) from None


def describe_validation_error(
    error: dict,
    label: str,
    root: type[BaseModel] | None = None,
    loc: list | None = None,
    what: str = "",
    full_hint: bool = True,
) -> str:
    """One line for a pydantic error: an unknown key names the nearest valid key of its section
    (walked from `root`), any other error names the key, the problem and the value."""
    loc = [str(p) for p in (error["loc"] if loc is None else loc)]
    dotted = ".".join(loc)
    if error["type"] == "extra_forbidden":
        valid = _valid_keys(loc[:-1], root or Recipe)
        near = difflib.get_close_matches(loc[-1], valid, n=1, cutoff=0.5)
        shown = ".".join(loc[:-1] + near) if full_hint else "".join(near)
        hint = f" (did you mean '{shown}'?)" if near else ""
        return f"{label}: unknown key '{dotted}'{what}{hint}; valid keys here: {', '.join(valid)}"
    got = error.get("input")
    shown = f" (got {got!r})" if not isinstance(got, (dict, list)) else ""
    where = f"{dotted}: " if dotted else ""
    message = error["msg"].removeprefix("Value error, ")  # our validators' own words
    return f"{label}: {where}{message}{shown}"


def _valid_keys(loc: list[str], root: type[BaseModel]) -> list[str]:
    """Field names of the section at `loc` (list indexes skipped), for the did-you-mean hint."""
    section: type[BaseModel] = root
    for part in loc:
        if part.isdigit():
            continue
        field = section.model_fields.get(part)
        inner = _section_type(field.annotation) if field else None
        if inner is None:
            return []
        section = inner
    return list(section.model_fields)


def _section_type(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _section_type(arg)
        if found is not None:
            return found
    return None


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    """The resolved recipe as plain YAML-able data (written to config.yaml and every checkpoint)."""
    return recipe.model_dump(mode="json")
