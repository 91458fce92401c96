"""N samples per item for generation tasks: pass@k, maj@k, best-of-N and their curve over N.

    posttrain eval MODEL --tasks arithmetic --samples 8 --temperature 0.8 [--k 1,2,4,8]
                   [--best-of math | --best-of reward_model --best-of-option path=RM_DIR]
                   [--adaptive P: up to N samples, stopping by self-evaluation (eval/adaptive.py)]

pass@k (Chen et al. 2021, "Evaluating Large Language Models Trained on Code", eq. 1): from n
samples of which c are correct, the unbiased estimate of "at least one of k draws is correct" is
    1 - C(n-c, k) / C(n, k) = 1 - prod_{i=n-c+1}^{n} (1 - k / i),
the product form avoiding the huge binomials. maj@k (as in OpenMathInstruct-2 and Minerva): the
most common extracted answer of the first k samples (ties: the one seen first) is the item's answer.
best-of-k: a scorer (any posttrain/rewards registry name: a verifier such as `math`, or a reward
model) scores each sample; the highest-scored of the first k (ties: the first) is the answer.
Each item's values are stored as sample scores, so results.json gets means with standard errors
and `posttrain eval compare` can resample them; the curve over k = 1, 2, 4, ..., N goes beside.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from posttrain.errors import UserError
from posttrain.eval.metrics import Metric, pass_at_k
from posttrain.eval.sample import Sample
from posttrain.eval.tasks.context import TaskContext, few_shot_turns, user_prompt
from posttrain.eval.tasks.generation import build_request, check_answer

CORRECTNESS_RULES = ("exact_match", "countdown")


@dataclass(frozen=True)
class VotingOptions:
    samples: int  # N: samples per item
    ks: tuple[int, ...] = ()  # the curve's k values; default 1, 2, 4, ..., N
    temperature: float | None = None  # default: the task's
    scorer: str | None = None  # a rewards registry name or module:function picking best-of-k
    scorer_options: dict[str, Any] = field(default_factory=dict)
    adaptive: float | None = None  # a P(no better) threshold: adaptive sampling (eval/adaptive.py)

    def curve_ks(self) -> tuple[int, ...]:
        return self.ks or default_ks(self.samples)


def default_ks(n: int) -> tuple[int, ...]:
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    return (*ks, n)


def check_options(options: VotingOptions) -> None:
    if options.samples < 1:
        raise UserError(f"--samples must be >= 1, got {options.samples}")
    if options.adaptive is not None:
        check_threshold(options.adaptive)
        if options.scorer or options.ks:
            raise UserError(
                f"{'--best-of' if options.scorer else '--k'} does not apply with --adaptive "
                "(the model's own self-evaluation picks the answer and decides when to stop)"
            )
    bad = [k for k in options.curve_ks() if k < 1 or k > options.samples]
    if bad:
        raise UserError(
            f"--k {bad[0]}: k must be between 1 and --samples {options.samples} "
            "(pass@k and maj@k need at least k samples per item)"
        )


def majority_index(answers: Sequence[Any]) -> int | None:
    """Index of the first sample giving the most common non-missing answer; None if all are missing.
    Unlike scoring.pairs.majority_answer (no answer on a tie, for rejection sampling), a tie here
    goes to the answer seen first, so maj@2 of two different answers is the first sample's."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    top = max(counts.values())
    return next(i for i, a in enumerate(answers) if a is not None and counts[a] == top)


def best_index(scores: Sequence[float]) -> int:
    """Index of the highest score (the first among equals)."""
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def item_scores(
    correct: Sequence[bool], answers: Sequence[Any], picks: Sequence[float] | None, ks: Sequence[int]
) -> dict[str, float]:
    """One item's pass@k, maj@k (and best_of@k when a scorer scored its samples) for each k."""
    n, c = len(correct), sum(correct)
    out: dict[str, float] = {}
    for k in ks:
        out[f"pass@{k}"] = pass_at_k(n, c, k)
        voted = majority_index(answers[:k])
        out[f"maj@{k}"] = float(voted is not None and correct[voted])
        if picks is not None:
            out[f"best_of@{k}"] = float(correct[best_index(picks[:k])])
    return out


def metrics(options: VotingOptions) -> list[Metric]:
    names = ["pass", "maj"] + (["best_of"] if options.scorer else [])
    return [Metric(f"{name}@{k}") for name in names for k in options.curve_ks()]


def curve(values: dict[str, float], options: VotingOptions) -> dict[str, list]:
    """{"k": [1, 2, 4, ...], "pass@k": [...], "maj@k": [...], "best_of@k": [...]} from the means."""
    out: dict[str, list] = {"k": list(options.curve_ks())}
    for name in ("pass", "maj", "best_of"):
        if f"{name}@1" in values or f"{name}@{options.samples}" in values:
            out[f"{name}@k"] = [values[f"{name}@{k}"] for k in options.curve_ks()]
    return out


def check_threshold(threshold: float) -> None:
    if not 0.0 <= threshold <= 1.0:
        raise UserError(
            f"--adaptive {threshold}: the P(no better) threshold must be between 0 and 1 (1: never stop early)"
        )


def correctness_rule(task) -> str:
    if task.kind != "generation":
        raise UserError(f"task '{task.name}': --samples applies to generation tasks, not {task.kind}")
    rules = [m for m in task.metrics if m in CORRECTNESS_RULES]
    if not rules:
        raise UserError(
            f"task '{task.name}': --samples needs an exact_match or countdown metric to "
            "decide which samples are correct"
        )
    return rules[0]


def make_scorer(options: VotingOptions) -> Callable[[list[dict], list[str]], list[float]] | None:
    if not options.scorer:
        return None
    from posttrain.rewards import reward_function

    fn, _ = reward_function(options.scorer, dict(options.scorer_options))
    batched = getattr(fn, "batched", None)
    return batched or (lambda rows, texts: [float(fn(r, t)) for r, t in zip(rows, texts)])


def run(
    task, docs: list[dict], pool: list[dict], ctx: TaskContext, options: VotingOptions, scorer: Callable | None = None
) -> list[Sample]:
    """N samples per document through the backend (one generate call: the repeats are batched
    together), each checked by the task's rule, then one Sample per document with its votes."""
    rule, n = correctness_rule(task), options.samples
    temperature = task.temperature if options.temperature is None else options.temperature
    if n > 1 and temperature <= 0:
        raise UserError(
            f"task '{task.name}': {n} samples at temperature 0 are all the same greedy answer; "
            "give --temperature T (> 0) or --set temperature=T"
        )
    prompter, cot = ctx.prompter(task), task.strategy == "cot"
    requests = [
        replace(
            build_request(
                task, prompter.for_row(doc), user_prompt(task, doc, cot), few_shot_turns(task, doc, pool, cot)
            ),
            temperature=temperature,
        )
        for doc in docs
    ]
    scorer = scorer if scorer is not None else make_scorer(options)  # a bad name fails before generating
    outputs = ctx.backend.generate([r for r in requests for _ in range(n)], desc=f"{task.name}: {n} samples per item")
    samples = []
    for i, (doc, request) in enumerate(zip(docs, requests)):
        texts = outputs[i * n : (i + 1) * n]
        checked = [check_answer(task, doc, text, rule) for text in texts]
        answers, correct = [a for a, _ in checked], [ok for _, ok in checked]
        picks = None
        if scorer is not None:
            row = {**doc, "prompt": prompter.decode(request.prompt), "reference": doc.get("reference")}
            picks = [float(s) for s in scorer([row] * n, texts)]
        scores = item_scores(correct, answers, picks, options.curve_ks())
        samples.append(
            Sample(
                task.name,
                doc["_id"],
                prompter.decode(request.prompt),
                texts[0],
                reference=doc.get("reference"),
                extracted=answers[0],
                scores=scores,
                extra={
                    "outputs": texts,
                    "answers": answers,
                    "correct": correct,
                    **({"scorer_scores": picks} if picks is not None else {}),
                },
            )
        )
    return samples
