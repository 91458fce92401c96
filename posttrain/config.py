"""The recipe: a typed, closed schema read from YAML, with `--set key=value` overrides.

Closed means an unknown key is an error that names the nearest valid key (a misspelled key must
never fall back silently to a default). Every default lives here, in one place.
"""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from posttrain.errors import UserError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(Section):
    path: str = "tiny"  # "tiny" (the project's default tiny Llama), a local directory or a hub id
    init: Literal["pretrained", "random"] = "pretrained"  # random: fresh weights from path's config
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    attn_implementation: str = "sdpa"
    gradient_checkpointing: bool = False
    revision: str | None = None
    trust_remote_code: bool = False


class AdapterConfig(Section):
    """Parameter-efficient tuning through peft; kind none trains every weight."""

    kind: Literal["none", "lora", "qlora", "dora"] = "none"
    r: int = 16
    alpha: float = 32.0
    dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"  # or names, e.g. [q_proj, v_proj]
    modules_to_save: list[str] = []  # trained in full and saved, e.g. [embed_tokens, lm_head]


class SourceConfig(Section):
    path: str
    kind: Literal["auto", "text", "conversation", "preference", "prompt"] = "auto"
    name: str | None = None  # mixture key; defaults to the file name without suffix
    weight: float = 1.0
    split: str | None = None  # for `datasets` directories holding a DatasetDict
    columns: dict[str, str] = {}  # rename fields before validation, e.g. {question: prompt}

    @property
    def key(self) -> str:
        return self.name or Path(self.path).name.split(".")[0]


class PhaseConfig(Section):
    """One curriculum phase of a pre-training mixture: source weights for `steps` optimizer steps."""

    steps: int | None = None  # None: until the end of training (last phase only)
    weights: dict[str, float]


class DataConfig(Section):
    sources: list[SourceConfig] = []
    eval_sources: list[SourceConfig] = []
    eval_fraction: float = 0.0  # held-out share of the training sources when no eval_sources
    phases: list[PhaseConfig] = []
    max_length: int | None = None  # default: the model's context length
    pack: bool | None = None  # default: True for pre-training, False for SFT
    # SFT without packing: micro-batches of similar lengths (less padding). Off by default: on data
    # whose length tracks its content (one template per length) it makes steps homogeneous and
    # slowed the quickstart's convergence (eval loss 0.95 vs 0.72 after 150 steps).
    group_by_length: bool = False
    on_error: Literal["fail", "skip"] = "fail"

    @field_validator("sources", "eval_sources", mode="before")
    @classmethod
    def _paths_as_sources(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            return [{"path": v} if isinstance(v, str) else v for v in value]
        return value


class TrainConfig(Section):
    micro_batch_size: int = 8
    grad_accum_steps: int = 1
    max_steps: int | None = None  # wins over epochs when both are set
    epochs: float = 1.0
    lr: float = 2e-5
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.95)
    schedule: Literal["constant", "linear", "cosine", "wsd"] = "cosine"
    warmup_steps: int = 0
    warmup_ratio: float = 0.0  # used when warmup_steps is 0
    min_lr_ratio: float = 0.0
    decay_ratio: float = 0.1  # wsd: share of steps in the final decay
    max_grad_norm: float | None = 1.0
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    distributed: Literal["ddp", "fsdp"] = "ddp"  # with several processes: replicate or shard (FSDP2)
    log_every: int = 1
    eval_every: int | None = None  # steps; the final step is always evaluated when eval data exists
    save_every: int | None = None  # steps
    keep_last: int = 2
    logprob_chunk_size: int = 256  # loss positions per LM-head chunk (x vocab floats live at once)


class EvalConfig(Section):
    """Evaluation at eval steps, through the evaluation engine (posttrain/eval): an exact-match
    task on the recipe's own prompt/reference file, and any built-in or YAML tasks."""

    task: Literal["exact_match"] | None = None
    data: str | None = None  # prompt records with a reference answer, for task: exact_match
    answer: Literal["final_number", "text"] = "final_number"  # what is compared with the reference
    tasks: list[str] = []  # built-in task names or task YAML files (`posttrain eval list`)
    limit: int | None = 200
    batch_size: int = 32
    max_new_tokens: int = 32

    @model_validator(mode="after")
    def _task_needs_data(self) -> EvalConfig:
        if self.task and not self.data:
            raise ValueError(f"eval.task '{self.task}' needs eval.data (prompts with references)")
        return self


class PreferenceSection(Section):
    """`posttrain dpo`: which objective (objectives/registry.py) and its hyperparameters."""

    loss: str = "sigmoid"
    beta: float = 0.1
    label_smoothing: float = 0.0  # conservative (cDPO)
    label_noise: float = 0.0  # robust (rDPO)
    gamma: float | None = None  # simpo margin
    gamma_beta_ratio: float | None = None  # simpo margin as gamma / beta
    ipo_average_logps: bool = False
    cpo_nll_weight: float = 1.0
    orpo_lambda: float = 0.1
    selm_alpha: float = 0.001
    rebel_eta: float = 1.0
    kto_desirable_weight: float = 1.0
    kto_undesirable_weight: float = 1.0
    logo_sft_weight: float = 0.1  # logo: weight of the SFT term NLL(y_w)
    # LOGO's positional-index synthesis (data/positions.py): prompts' position ids spread over
    # this many positions in `position_chunks` chunks; null: ordinary positions
    position_synthesis_length: int | None = None
    position_chunks: int = 2
    reference: str | None = None  # another reference model; default: the initial policy
    sample_max_new_tokens: int = 128  # selm: the reference-policy sample per prompt
    sample_temperature: float = 1.0


class RewardSection(Section):
    """`posttrain reward`: which objective (objectives/registry.py), its head and its annotations."""

    loss: str = "bradley_terry"  # bradley_terry | bt_margin | scaled_bt | regression
    attributes: list[str] = []  # regression: one head output per attribute, e.g. HelpSteer2's five
    score_attribute: str | None = None  # pairwise on a multi-attribute head: the output that scores
    margin_field: str = "margin"  # bt_margin: the data field holding each pair's margin m
    strength_field: str = "strength"  # scaled_bt: the data field holding each pair's m in {1,2,3}
    reset_head: bool = False  # re-initialise an initial reward model's head (always when its size differs)


class RewardTermConfig(Section):
    """One reward term of `posttrain grpo` (posttrain/rewards lists the names and options)."""

    name: str  # a registered reward (math, countdown, ifeval, similarity, format, exploration,
    # reward_model) or a user function by dotted path, e.g. my_pkg.rewards:score
    weight: float = 1.0
    label: str | None = None  # its name in the logs; default: name
    verifier: bool | None = None  # decides accuracy; default: the registry's (user functions: True)
    options: dict[str, Any] = {}  # keyword arguments of the reward function


class GrpoSection(Section):
    """`posttrain grpo`: online RL with verifiable rewards (objectives/policy_gradient.py)."""

    rewards: list[RewardTermConfig] = [RewardTermConfig(name="math")]
    group_size: int = 8  # completions sampled per prompt (G)
    prompts_per_step: int = 8  # prompts per batch of samples (across processes)
    advantage: Literal["group_std", "none", "rloo"] = "group_std"  # rloo: leave-one-out baseline
    clip_eps: float = 0.2
    clip_eps_high: float | None = None  # DAPO's clip-higher; default: clip_eps
    kl_coef: float = 0.0  # beta; 0 switches the KL term (and the reference model) off
    kl_estimator: Literal["k1", "k3"] = "k3"
    aggregation: Literal["sequence_mean", "token"] = "sequence_mean"  # the loss unit
    updates_per_batch: int = 1  # mu: optimizer steps on each batch of samples
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    no_eos_reward: float | None = None  # the reward of a completion cut at max_new_tokens (Tulu 3: -10)
    backend: Literal["hf", "vllm"] = "hf"  # rollout engine (eval/backend.py); vllm: GPU, colocated
    vllm_gpu_memory_utilization: float = 0.3  # the engine's share of the GPU it shares with training
    generation_batch_size: int = 64  # hf backend
    samples_every: int = 10  # steps between writes of samples.jsonl (0: never)
    # PPO with a value function (objectives/ppo.py), Tulu 3's RLVR algorithm
    algorithm: Literal["grpo", "ppo"] = "grpo"
    critic: Literal["separate", "head"] = "separate"  # ppo: a critic model, or a value head on the policy
    critic_model: str | None = None  # ppo, separate: its initial weights (a reward model); default: the policy's
    gae_gamma: float = 1.0  # ppo: discount
    gae_lambda: float = 0.95  # ppo: GAE lambda
    vf_coef: float = 0.1  # ppo: weight of the value loss
    value_clip: float = 0.2  # ppo: the value may move this far from the rollout's value before clipping
    whiten_advantages: bool = True  # ppo
    # ppo: -kl_coef*(log pi_old - log ref) per token in the reward (Tulu 3); false: a loss term as in GRPO
    kl_in_reward: bool = True

    @field_validator("group_size", "prompts_per_step", "updates_per_batch", "max_new_tokens")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"must be >= 1, got {value}")
        return value


class LogConfig(Section):
    tensorboard: bool = True
    wandb_project: str | None = None
    run_name: str | None = None


class Recipe(Section):
    stage: str | None = None  # informational; the CLI sub-command decides
    model: ModelConfig = ModelConfig()
    adapter: AdapterConfig = AdapterConfig()
    data: DataConfig = DataConfig()
    seed: int = 0
    output_dir: str | None = None
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    preference: PreferenceSection = PreferenceSection()
    reward: RewardSection = RewardSection()
    grpo: GrpoSection = GrpoSection()
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
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise UserError(f"{path}: not valid YAML: {str(err).splitlines()[0]}") from None
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
    value = yaml.safe_load(text) if text.strip() else ""
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


def describe_validation_error(error: dict, label: str, root: type[BaseModel] | None = None,
                              loc: list | None = None, what: str = "", full_hint: bool = True) -> str:
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
    return f"{label}: {where}{error['msg']}{shown}"


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
