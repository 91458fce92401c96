"""An LLM judge as a scorer (MT-Bench / Chatbot Arena, Zheng et al. 2023, "Judging LLM-as-a-Judge").

mode single:   the judge reads the instruction, a rubric and one response, and answers a grade
               1..10; the score is the expected grade sum_k k * P(grade = k) under the judge (a
               local model: softmax over the log-likelihoods of the ten answers; an HTTP endpoint:
               the top log-probs of a one-token reply, else the grade read from its text by
               eval/judge_parsing.py, the parser eval's judge tasks use). A reply naming no grade,
               or a failed judge request, is Unscored for that completion (recorded by `posttrain
               score` per completion with its reason), never an error that stops the job.
mode pairwise: the response against a baseline answer (the row's `baseline_field`, default
               `reference`): P(response wins), averaged over both presentation orders so the judge's
               position bias cancels (MT-Bench's swap); 0.5 = as good as the baseline.
`model` is a local model directory ('tiny', a hub id) or an OpenAI-compatible base URL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from posttrain.errors import UserError
from posttrain.rewards.unscored import Unscored

SINGLE_TEMPLATE = """Please act as an impartial judge and evaluate the quality of the response an AI \
assistant gave to the user instruction below. {rubric}

# Instruction
{instruction}

# Response
{response}

Rate the response on a scale of 1 to 10. Answer with one number from 1 to 10."""

DEFAULT_RUBRIC = (
    "Consider helpfulness, relevance, accuracy, depth and level of detail. Length alone must not influence your rating."
)
GRADES = [str(k) for k in range(1, 11)]
MODES = ("single", "pairwise")


def _instruction(sample: dict) -> str:
    messages = sample["prompt"]
    return (
        messages
        if isinstance(messages, str)
        else next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    )


def _open_judge(model: str, api_model: str, api_key_env: str | None, batch_size: int, timeout_s: float):
    from posttrain.generation.judge import HTTPJudge, LocalJudge

    if model.startswith(("http://", "https://")):
        return HTTPJudge(model, api_model, api_key_env, timeout_s)
    from posttrain.generation.backend import HFBackend
    from posttrain.model.inference import (
        has_own_chat_template,
        load_model_and_tokenizer,
    )

    loaded, tokenizer = load_model_and_tokenizer(model)
    return LocalJudge(
        HFBackend(loaded, tokenizer, batch_size, is_chat=has_own_chat_template(tokenizer), show_progress=False)
    )


def judge_score(
    model: str | None = None,
    mode: str = "single",
    rubric: str | None = None,
    template: str | None = None,
    baseline_field: str = "reference",
    api_model: str = "default",
    api_key_env: str | None = None,
    batch_size: int = 8,
    timeout_s: float = 60.0,
) -> Callable:
    """A scorer asking the judge `model`; see the module docstring for the modes."""
    from posttrain.generation.judge import PAIRWISE_TEMPLATE, load_template

    if not model:
        raise UserError("scorer 'judge' needs options: model=<model dir or http(s)://.../v1 URL>")
    if mode not in MODES:
        raise UserError(f"scorer 'judge': mode {mode!r}; expected one of {', '.join(MODES)}")
    needs = ("instruction", "response") if mode == "single" else ("instruction", "output_a", "output_b")
    text = load_template(template, SINGLE_TEMPLATE if mode == "single" else PAIRWISE_TEMPLATE, needs)
    rubric_text = load_template(rubric, DEFAULT_RUBRIC, ()) if rubric else DEFAULT_RUBRIC
    judge = _open_judge(model, api_model, api_key_env, batch_size, timeout_s)

    def single(samples: Sequence[dict], completions: Sequence[str]) -> list[float | Unscored]:
        prompts = [
            text.format(instruction=_instruction(s), response=c, rubric=rubric_text)
            for s, c in zip(samples, completions)
        ]
        return [Unscored(r.problem or "no grade") if r.value is None else r.value for r in judge.rate(prompts, GRADES)]

    def pairwise(samples: Sequence[dict], completions: Sequence[str]) -> list[float | Unscored]:
        baselines = [str(s[baseline_field]) for s in samples]
        first = [
            text.format(instruction=_instruction(s), output_a=c, output_b=b)
            for s, c, b in zip(samples, completions, baselines)
        ]
        swapped = [
            text.format(instruction=_instruction(s), output_a=b, output_b=c)
            for s, c, b in zip(samples, completions, baselines)
        ]
        probs = judge.choose(first + swapped, ["A", "B"])
        n = len(completions)
        # both orders are needed for the position bias to cancel: one unanswered leaves no score
        return [
            Unscored("the judge named neither A nor B in one order")
            if probs[i] is None or probs[n + i] is None
            else (probs[i][0] + probs[n + i][1]) / 2
            for i in range(n)
        ]

    batched = single if mode == "single" else pairwise

    def score(sample: dict, completion: str) -> float:
        return batched([sample], [completion])[0]

    score.batched = batched
    score.needs = () if mode == "single" else (baseline_field,)
    return score
