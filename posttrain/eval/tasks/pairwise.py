"""Pairwise judging: the model under evaluation (A) against baseline answers (B, e.g. AlpacaEval's
reference outputs), as a judge sees them.

Each instruction is judged twice, once with the model's answer shown first and once second, to
cancel the judge's position bias:
  preference  mean over both orders of the judge's probability for the model's answer
  win         1 if the judge picks the model in both orders, 0 if the baseline in both,
              0.5 (a tie) if the orders disagree or the judge is exactly undecided
  win_rate    mean of win (ties count half);  tie_rate  share of ties
  lc_win_rate length-controlled win rate (length_control.py: logistic regression of the
              preference on the answers' length difference, read at equal length)
  judge_failures  instructions the judge gave no answer for in either order: counted here and
              left out of the metrics above (scoring them as ties would pull win_rate to 0.5)
"""

from __future__ import annotations

from posttrain.eval.metrics import Metric
from posttrain.eval.sample import Sample
from posttrain.eval.tasks.context import TaskContext, user_prompt
from posttrain.eval.tasks.generation import build_request
from posttrain.generation.judge import PAIRWISE_TEMPLATE, load_template, make_judge

LABELS = ("A", "B")
METRICS = [
    Metric("win_rate"),
    Metric("lc_win_rate", "lc_win_rate"),
    Metric("preference"),
    Metric("tie_rate", higher_is_better=False),
    Metric("judge_failures", "count", higher_is_better=False),
]


def metrics(task) -> list[Metric]:
    return METRICS


def _vote(p_model: float) -> float:
    return 1.0 if p_model > 0.5 else 0.0 if p_model < 0.5 else 0.5


def outcome(p_model_first: float, p_model_second: float) -> tuple[float, float]:
    """(win, tie) from the judge's probability for the model in each order."""
    votes = (_vote(p_model_first), _vote(p_model_second))
    if votes == (1.0, 1.0):
        return 1.0, 0.0
    if votes == (0.0, 0.0):
        return 0.0, 0.0
    return 0.5, 1.0


def judge_pairs(
    judge, template: str, instructions: list[str], model_answers: list[str], baseline_answers: list[str]
) -> list[tuple[float | None, float | None]]:
    """P(model preferred) per instruction in each order: (model shown as A, model shown as B);
    None where the judge gave no answer."""
    first = [
        template.format(instruction=i, output_a=m, output_b=b)
        for i, m, b in zip(instructions, model_answers, baseline_answers)
    ]
    second = [
        template.format(instruction=i, output_a=b, output_b=m)
        for i, m, b in zip(instructions, model_answers, baseline_answers)
    ]
    probs = judge.choose(first + second, LABELS)
    n = len(instructions)
    return [(probs[i] and probs[i][0], probs[n + i] and probs[n + i][1]) for i in range(n)]


def run(task, docs: list[dict], pool: list[dict], ctx: TaskContext) -> list[Sample]:
    prompter = ctx.prompter(task)
    requests = [build_request(task, prompter.for_row(doc), user_prompt(task, doc)) for doc in docs]
    answers = [a.strip() for a in ctx.backend.generate(requests, desc=f"{task.name}: generate")]
    judge = ctx.judge or make_judge(task.judge, seed=ctx.seed)
    template = load_template(task.judge.template, PAIRWISE_TEMPLATE, ("instruction", "output_a", "output_b"))
    pairs = judge_pairs(judge, template, [d["prompt"] for d in docs], answers, [d["baseline"] for d in docs])
    samples = []
    for doc, request, answer, (p_first, p_second) in zip(docs, requests, answers, pairs):
        failed = p_first is None or p_second is None
        if failed:
            win, scores = None, {"judge_failures": 1.0}
        else:
            win, tie = outcome(p_first, p_second)
            scores = {"win_rate": win, "tie_rate": tie, "preference": (p_first + p_second) / 2, "judge_failures": 0.0}
        samples.append(
            Sample(
                task.name,
                doc["_id"],
                prompter.decode(request.prompt),
                answer,
                reference=doc["baseline"],
                extracted=win,
                scores=scores,
                extra={
                    "p_model_first": p_first,
                    "p_model_second": p_second,
                    "length_diff": len(answer) - len(doc["baseline"]),
                },
            )
        )
    return samples
