"""Adaptive sampling by capability-aware self-evaluation (Manvi, Singh and Ermon 2024, "Adaptive
Inference-Time Compute: LLMs Can Predict if They Can Do Better, Even Mid-Generation"):

    posttrain eval SELF_EVAL_MODEL --tasks arithmetic --samples 8 --temperature 0.8 --adaptive 0.8

Round r = 1..N: every item still open gets one new sample (one batched backend call, seeded
seed + r so rounds differ), and its P(no better) (eval/self_eval.py: the model's own probability
that a new attempt would not be better) is read. An item closes once a sample's P(no better)
exceeds the threshold, so easy items stop after one sample and hard ones draw more; at most N.
The answer is the drawn sample with the highest P(no better) (the first among equals), the paper's
self-evaluated best-of-n. Threshold 1 never closes early: the fixed best-of-N by self-evaluation.

Per item (means with standard errors in results.json): `acc` (the chosen sample is correct),
`first_acc` (the first sample alone), `samples` (samples drawn, each with one self-evaluation
request) and `tokens` (completion tokens generated over the drawn samples). The fixed-N baselines
(maj@k, pass@k) come from the same command without --adaptive.
"""

from __future__ import annotations

from dataclasses import replace

from posttrain.errors import UserError
from posttrain.eval.metrics import Metric
from posttrain.eval.sample import Sample
from posttrain.eval.self_eval import no_better_probabilities
from posttrain.eval.tasks.context import TaskContext, few_shot_turns, user_prompt
from posttrain.eval.tasks.generation import build_request, check_answer
from posttrain.eval.voting import check_threshold, correctness_rule
from posttrain.generation.backend import RequestFailed

METRICS = [
    Metric("acc"),
    Metric("first_acc"),
    Metric("samples", higher_is_better=False),
    Metric("tokens", higher_is_better=False),
]


def chosen_index(p_no_better: list[float]) -> int:
    """The drawn sample the model rates most likely to be unbeatable (the first among equals)."""
    return max(range(len(p_no_better)), key=lambda i: (p_no_better[i], -i))


def run(task, docs: list[dict], pool: list[dict], ctx: TaskContext, options) -> list[Sample]:
    """options: voting.VotingOptions with `adaptive` (the threshold) and `samples` (at most N)."""
    check_threshold(options.adaptive)
    rule = correctness_rule(task)
    temperature = task.temperature if options.temperature is None else options.temperature
    if temperature <= 0:
        raise UserError(f"task '{task.name}': adaptive sampling resamples: give --temperature T (> 0)")
    prompter, cot = ctx.prompter(task), task.strategy == "cot"
    users = [user_prompt(task, doc, cot) for doc in docs]
    shots = [few_shot_turns(task, doc, pool, cot) for doc in docs]
    requests = [
        replace(build_request(task, prompter.for_row(doc), u, s), temperature=temperature)
        for doc, u, s in zip(docs, users, shots)
    ]
    drawn: list[list[dict]] = [[] for _ in docs]
    open_items = list(range(len(docs)))
    for round_index in range(options.samples):
        if not open_items:
            break
        outputs = ctx.backend.complete(
            [requests[i] for i in open_items],
            seed=ctx.seed + round_index,
            desc=f"{task.name}: round {round_index + 1}, {len(open_items)} open",
        )
        texts = ["" if isinstance(o, RequestFailed) else o.text for o in outputs]
        p_no = no_better_probabilities(
            ctx.backend, prompter, [[*shots[i], (users[i], text)] for i, text in zip(open_items, texts)]
        )
        for i, text, output, p in zip(open_items, texts, outputs, p_no):
            answer, correct = check_answer(task, docs[i], text, rule)
            tokens = 0 if isinstance(output, RequestFailed) else output.num_tokens
            drawn[i].append({"text": text, "answer": answer, "correct": correct, "p_no_better": p, "tokens": tokens})
        open_items = [i for i in open_items if drawn[i][-1]["p_no_better"] <= options.adaptive]
    return [
        _sample(task, doc, prompter.decode(request.prompt), attempts)
        for doc, request, attempts in zip(docs, requests, drawn)
    ]


def _sample(task, doc: dict, prompt: str, attempts: list[dict]) -> Sample:
    best = attempts[chosen_index([a["p_no_better"] for a in attempts])]
    scores = {
        "acc": float(best["correct"]),
        "first_acc": float(attempts[0]["correct"]),
        "samples": float(len(attempts)),
        "tokens": float(sum(a["tokens"] for a in attempts)),
    }
    return Sample(
        task.name,
        doc["_id"],
        prompt,
        best["text"],
        reference=doc.get("reference"),
        extracted=best["answer"],
        scores=scores,
        extra={"attempts": attempts},
    )


def metrics(options) -> list[Metric]:
    return METRICS
