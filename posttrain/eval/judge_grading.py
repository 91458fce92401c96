"""Single-answer grading by a judge model: a 1-10 rating per answer, MT-Bench style.

Zheng et al. 2023, "Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena": the judge reads the
question (for a second turn, the whole conversation, judging the assistant's last answer), an
optional reference answer (maths, reasoning, coding: reference-guided grading) and a rubric, writes
a short explanation and ends with "Rating: [[N]]". The rating is parsed from the reply
(parse_rating); a reply without one is an unparsed judgment, counted by the task and never turned
into a score.

Judges (grade(prompts) -> reply texts):
  LocalGrader  a Hugging Face model directory through the evaluation backend (greedy generation)
  HTTPGrader   an OpenAI-compatible /v1/chat/completions endpoint, through the same POST as the
               pairwise HTTPJudge (generation/judge.py), answer text at temperature 0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from posttrain.errors import UserError
from posttrain.generation.backend import GenerationRequest
from posttrain.generation.judge import HTTPJudge, load_template
from posttrain.generation.judge_parsing import parse_rating  # noqa: F401 - the tasks' and tests' import
from posttrain.generation.prompter import Prompter

JUDGE_SYSTEM = "You are a helpful assistant."
DEFAULT_RUBRIC = (
    "Consider factors such as the helpfulness, relevance, accuracy, depth, creativity, and level "
    "of detail of the response."
)
_INSTRUCTION = (
    "Please act as an impartial judge and evaluate the quality of the response provided by an AI assistant "
    "to the user question displayed below. {rubric} Begin your evaluation by providing a short explanation. "
    "Be as objective as possible. After providing your explanation, you must rate the response on a scale "
    'of 1 to 10 by strictly following this format: "[[rating]]", for example: "Rating: [[5]]".'
)
_REFERENCE_INSTRUCTION = (
    "Please act as an impartial judge and evaluate the quality of the response provided by an AI assistant "
    "to the user question displayed below. Your evaluation should consider correctness and helpfulness. "
    "You will be given a reference answer and the assistant's answer. Begin your evaluation by comparing "
    "the assistant's answer with the reference answer. Identify and correct any mistakes. {rubric} Be as "
    "objective as possible. After providing your explanation, you must rate the response on a scale of 1 "
    'to 10 by strictly following this format: "[[rating]]", for example: "Rating: [[5]]".'
)
SINGLE_TEMPLATE = (
    "[Instruction]\n" + _INSTRUCTION + "\n\n[Question]\n{question}\n\n"
    "[The Start of Assistant's Answer]\n{answer}\n[The End of Assistant's Answer]"
)
REFERENCE_TEMPLATE = (
    "[Instruction]\n" + _REFERENCE_INSTRUCTION + "\n\n[Question]\n{question}\n\n"
    "[The Start of Reference Answer]\n{reference}\n[The End of Reference Answer]\n\n"
    "[The Start of Assistant's Answer]\n{answer}\n[The End of Assistant's Answer]"
)
_MULTI_TURN_FOCUS = " Your evaluation should focus on the assistant's answer to the last user question."
MULTI_TURN_TEMPLATE = (
    "[Instruction]\n" + _INSTRUCTION + _MULTI_TURN_FOCUS + "\n\n"
    "<|The Start of Assistant A's Conversation with User|>\n{conversation}\n"
    "<|The End of Assistant A's Conversation with User|>"
)
MULTI_TURN_REFERENCE_TEMPLATE = (
    "[Instruction]\n" + _REFERENCE_INSTRUCTION + _MULTI_TURN_FOCUS + "\n\n"
    "<|The Start of Reference Answer|>\n{reference}\n<|The End of Reference Answer|>"
    "\n\n<|The Start of Assistant A's Conversation with User|>\n{conversation}\n"
    "<|The End of Assistant A's Conversation with User|>"
)


def conversation_text(turns: Sequence[str], answers: Sequence[str]) -> str:
    """MT-Bench's rendering of a multi-turn conversation for the judge."""
    parts = []
    for user, answer in zip(turns, answers):
        parts.append(f"### User:\n{user}\n\n### Assistant A:\n{answer}")
    return "\n\n".join(parts)


def judge_prompt(
    turns: Sequence[str],
    answers: Sequence[str],
    reference: str | None,
    rubric: str,
    single_template: str = SINGLE_TEMPLATE,
) -> str:
    """The prompt judging answers[-1]: single-answer on the first turn, the whole conversation on a
    later one, reference-guided when a reference answer is given."""
    if len(answers) == 1:
        template = REFERENCE_TEMPLATE if reference is not None else single_template
        return template.format(rubric=rubric, question=turns[0], answer=answers[0], reference=reference)
    template = MULTI_TURN_REFERENCE_TEMPLATE if reference is not None else MULTI_TURN_TEMPLATE
    return template.format(rubric=rubric, conversation=conversation_text(turns, answers), reference=reference)


def single_template(template: str | None) -> str:
    """The task's judge.template (text or file) replacing the first-turn, no-reference template."""
    return load_template(template, SINGLE_TEMPLATE, ("question", "answer"))


class Grader(Protocol):
    def grade(self, prompts: Sequence[str]) -> list[str]: ...


class LocalGrader:
    """A local judge model: greedy generation of its verdict through the evaluation backend."""

    def __init__(self, backend, max_new_tokens: int = 512):
        self.backend, self.max_new_tokens = backend, max_new_tokens
        self.prompter = Prompter(backend.tokenizer, backend.is_chat, JUDGE_SYSTEM)

    def grade(self, prompts: Sequence[str]) -> list[str]:
        requests = [GenerationRequest(self.prompter.prompt(p), self.max_new_tokens) for p in prompts]
        return self.backend.generate(requests, desc="judge")


class HTTPGrader:
    """An OpenAI-compatible endpoint: the judge's answer text at temperature 0."""

    def __init__(self, judge: HTTPJudge, max_tokens: int = 512):
        self.judge, self.max_tokens = judge, max_tokens

    def grade(self, prompts: Sequence[str]) -> list[str]:
        return [self._one(p) for p in prompts]

    def _one(self, prompt: str) -> str:
        reply = self.judge._post(
            {
                "model": self.judge.api_model,
                "temperature": 0,
                "max_tokens": self.max_tokens,
                "messages": [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": prompt}],
            }
        )
        choice = (reply.get("choices") or [{}])[0]
        return str((choice.get("message") or {}).get("content") or "")


def make_grader(cfg, max_tokens: int, batch_size: int = 16, seed: int = 0) -> Grader:
    """A grading judge from a task's JudgeConfig: a URL is an endpoint, anything else a local model."""
    if not cfg.model:
        raise UserError("this task needs a judge: --set TASK.judge.model=MODEL_DIR_OR_URL")
    if cfg.model.startswith(("http://", "https://")):
        return HTTPGrader(HTTPJudge(cfg.model, cfg.api_model, cfg.api_key_env, cfg.timeout_s), max_tokens)
    from posttrain.generation.backend import HFBackend
    from posttrain.model.inference import (
        has_own_chat_template,
        load_model_and_tokenizer,
    )

    model, tokenizer = load_model_and_tokenizer(cfg.model)
    backend = HFBackend(model, tokenizer, batch_size, seed, is_chat=has_own_chat_template(tokenizer))
    return LocalGrader(backend, max_tokens)
