"""Judge-graded evaluation, MT-Bench style (Zheng et al. 2023): single-answer 1-10 grading.

The model answers each question turn by turn: the second user turn follows the model's OWN first
answer (the conversation so far is the prompt), as in MT-Bench. A judge (eval/judge_grading.py)
then grades every turn's answer: the first with the question alone, a later one with the whole
conversation; documents of a `reference_categories` category with reference answers are graded
against them (reference-guided grading for maths and reasoning). Metrics:
  score              mean of all parsed ratings (every turn of every document)
  score_turn_<k>     mean of the parsed ratings of turn k
  score_<category>   mean of the parsed ratings of one category's turns
  unparsed           judgments whose reply held no rating: counted, left out of the means
  judgments          judgments made
"""

from __future__ import annotations

import statistics

from posttrain.errors import UserError
from posttrain.eval.judge_grading import (
    DEFAULT_RUBRIC,
    judge_prompt,
    make_grader,
    parse_rating,
    single_template,
)
from posttrain.eval.metrics import Metric
from posttrain.eval.sample import Sample
from posttrain.eval.tasks.context import TaskContext
from posttrain.eval.tasks.generation import build_request


def metrics(task) -> list[Metric]:
    out = [Metric("score", "judge_rating")]
    out += [Metric(f"score_turn_{k}", "judge_rating") for k in range(1, task.max_turns + 1)]
    out += [Metric(f"score_{c}", "judge_rating") for c in task.categories]
    return out + [Metric("unparsed", "sum", higher_is_better=False), Metric("judgments", "sum")]


def _check(task, docs: list[dict]) -> None:
    for doc in docs:
        where = f"task '{task.name}': document {doc['_id']}"
        if len(doc["turns"]) > task.max_turns:
            raise UserError(f"{where}: {len(doc['turns'])} user turns, more than max_turns {task.max_turns}")
        if doc["category"] not in task.categories:
            raise UserError(
                f"{where}: category '{doc['category']}' is not in the task's categories "
                f"({', '.join(task.categories)}): add it to `categories`"
            )


def answer_turns(task, prompter, backend, docs: list[dict]) -> list[list[str]]:
    """The model's answers, turn by turn; turn k's prompt holds the model's own answers so far."""
    answers: list[list[str]] = [[] for _ in docs]
    for k in range(max(len(d["turns"]) for d in docs)):
        active = [i for i, d in enumerate(docs) if len(d["turns"]) > k]
        requests = [
            build_request(task, prompter, docs[i]["turns"][k], list(zip(docs[i]["turns"][:k], answers[i])))
            for i in active
        ]
        for i, text in zip(active, backend.generate(requests, desc=f"{task.name}: turn {k + 1}")):
            answers[i].append(text.strip())
    return answers


def _reference(task, doc: dict, turn: int) -> str | None:
    references = doc.get("references") or []
    if doc["category"] not in task.reference_categories or turn >= len(references):
        return None
    return references[turn]


def run(task, docs: list[dict], pool: list[dict], ctx: TaskContext) -> list[Sample]:
    _check(task, docs)
    prompter = ctx.prompter(task)
    answers = answer_turns(task, prompter, ctx.backend, docs)
    rubric, template = task.rubric or DEFAULT_RUBRIC, single_template(task.judge.template)
    index, prompts = [], []
    for i, doc in enumerate(docs):
        for k in range(len(doc["turns"])):
            index.append(i)
            prompts.append(
                judge_prompt(doc["turns"][: k + 1], answers[i][: k + 1], _reference(task, doc, k), rubric, template)
            )
    grader = ctx.judge or make_grader(task.judge, task.judge_max_tokens, seed=ctx.seed)
    replies = grader.grade(prompts)
    per_doc: list[list[str]] = [[] for _ in docs]
    for i, reply in zip(index, replies):
        per_doc[i].append(reply)
    return [_sample(task, doc, answers[i], per_doc[i]) for i, doc in enumerate(docs)]


def _sample(task, doc: dict, answers: list[str], replies: list[str]) -> Sample:
    ratings = [parse_rating(reply) for reply in replies]
    parsed = [r for r in ratings if r is not None]
    scores = {"unparsed": float(len(ratings) - len(parsed)), "judgments": float(len(ratings))}
    if parsed:
        scores["score"] = statistics.fmean(parsed)
    return Sample(
        task.name,
        doc["_id"],
        "\n\n".join(doc["turns"]),
        answers[-1],
        reference=doc.get("references"),
        extracted=ratings,
        scores=scores,
        extra={"ratings": ratings, "category": doc["category"], "answers": answers, "judge_replies": replies},
    )
