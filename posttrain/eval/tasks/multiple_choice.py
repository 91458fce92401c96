"""Multiple choice by log-likelihood: the model's answer is the choice it finds most likely.

acc:             argmax of log p(choice | prompt)
acc_norm:        argmax of log p(choice | prompt) / len(choice) in characters -- lm-evaluation-
                 harness's acc_norm: the scored continuation is " " + choice (plain text), but the
                 divisor is the choice's own length (`len(i) for i in choices`), without the space;
                 characters, not tokens, so models with different tokenizers are normalised alike
acc_norm_tokens: argmax of the mean log-prob per choice token
With choice_style "letters" the choices are listed as "A. ...", and the scored continuation is the
letter (all one token long, so the three agree); with "texts" each choice's own text is scored.
"""

from __future__ import annotations

from posttrain.eval.metrics import Metric
from posttrain.eval.prompting import fill, task_examples
from posttrain.eval.sample import Sample
from posttrain.eval.tasks.context import TaskContext, user_prompt
from posttrain.eval.tasks.formats import LETTERS
from posttrain.generation.backend import LoglikelihoodRequest

METRICS = [Metric("acc"), Metric("acc_norm"), Metric("acc_norm_tokens")]


def metrics(task) -> list[Metric]:
    return METRICS


def _question(task, doc: dict) -> str:
    text = user_prompt(task, doc)
    if task.choice_style != "letters":
        return text
    listed = "\n".join(f"{LETTERS[i]}. {choice}" for i, choice in enumerate(doc["choices"]))
    return f"{text}\n{listed}\nAnswer:"


def _answers(task, doc: dict) -> list[str]:
    if task.choice_style == "letters":
        return list(LETTERS[: len(doc["choices"])])
    return list(doc["choices"])


def _shot(task, doc: dict) -> tuple[str, str]:
    return _question(task, doc), _answers(task, doc)[doc["gold"]]


def run(task, docs: list[dict], pool: list[dict], ctx: TaskContext) -> list[Sample]:
    prompter = ctx.prompter(task)
    requests, spans, prompts = [], [], []
    for doc in docs:
        shots = [_shot(task, shot) for shot in task_examples(task, pool, doc)]
        preamble = fill(task.preamble, doc, task.name) if task.preamble else None
        context = prompter.for_row(doc).prompt(_question(task, doc), shots, preamble)
        answers = _answers(task, doc)
        spans.append((len(requests), len(answers)))
        requests += [LoglikelihoodRequest(context, prompter.continuation_ids(a)) for a in answers]
        prompts.append(prompter.decode(context))
    results = ctx.backend.loglikelihood(requests, desc=f"{task.name}: loglikelihood")
    samples = []
    for doc, prompt, (start, count) in zip(docs, prompts, spans):
        scored = results[start : start + count]
        answers = _answers(task, doc)
        logprobs = [r.logprob for r in scored]
        by_chars = [lp / max(1, len(a)) for lp, a in zip(logprobs, answers)]
        by_tokens = [r.logprob / max(1, r.n_tokens) for r in scored]
        pick = _argmax(logprobs)
        samples.append(
            Sample(
                task.name,
                doc["_id"],
                prompt,
                answers[pick],
                reference=doc["gold"],
                extracted=pick,
                scores={
                    "acc": float(pick == doc["gold"]),
                    "acc_norm": float(_argmax(by_chars) == doc["gold"]),
                    "acc_norm_tokens": float(_argmax(by_tokens) == doc["gold"]),
                },
                extra={"logprobs": logprobs, "choices": answers},
            )
        )
    return samples


def _argmax(values: list[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)
