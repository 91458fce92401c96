"""Metrics as functions of a task's samples, each named by its aggregation.

A metric is (name, aggregation); the aggregation name is stored in results.json so `compare` can
recompute the metric on bootstrap resamples of samples.jsonl. Standard errors: for a mean, the
sample standard deviation over sqrt(n); for corpus-level metrics (F1, MCC, BLEU, perplexity, ...),
the standard deviation over seeded bootstrap resamples of the samples.
ROUGE comes from rouge-score and BLEU/chrF from sacrebleu; F1 and MCC are the textbook formulas
(sklearn's definitions: labels = union of references and predictions, zero where undefined).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from posttrain.eval.sample import Sample

BOOTSTRAP_ITERS = 1000  # for the standard errors of corpus-level metrics


@dataclass(frozen=True)
class Metric:
    name: str
    aggregate: str = "mean"
    higher_is_better: bool = True


def scored_values(samples: Sequence[Sample], name: str) -> np.ndarray:
    """Each sample's score, NaN where the sample has none: an item that failed (a judge that gave
    no answer) has no score and is left out of the mean, and counted by its task's failure count."""
    return np.array([s.scores.get(name, np.nan) for s in samples], dtype=float)


def mean_of(samples: Sequence[Sample], name: str) -> float:
    values = scored_values(samples, name)
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


def count_of(samples: Sequence[Sample], name: str) -> float:
    """How many samples are flagged (score 1) under `name`: failures reported beside the metrics."""
    return float(sum(s.scores.get(name, 0.0) for s in samples))


# ---- classification ----------------------------------------------------------------------------


def confusion(references: Sequence, predictions: Sequence) -> tuple[list, np.ndarray]:
    labels = sorted({*map(str, references), *map(str, predictions)})
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for ref, pred in zip(references, predictions):
        matrix[index[str(ref)], index[str(pred)]] += 1
    return labels, matrix


def f1_per_class(matrix: np.ndarray) -> np.ndarray:
    tp = np.diag(matrix).astype(float)
    predicted, actual = matrix.sum(axis=0), matrix.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    total = precision + recall
    return np.divide(2 * precision * recall, total, out=np.zeros_like(tp), where=total > 0)


def f1_macro(references: Sequence, predictions: Sequence) -> float:
    return float(f1_per_class(confusion(references, predictions)[1]).mean())


def f1_weighted(references: Sequence, predictions: Sequence) -> float:
    matrix = confusion(references, predictions)[1]
    support = matrix.sum(axis=1)
    return float((f1_per_class(matrix) * support).sum() / max(1, support.sum()))


def matthews_corrcoef(references: Sequence, predictions: Sequence) -> float:
    """Gorodkin's multi-class MCC: (c*s - sum p_k t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2))."""
    matrix = confusion(references, predictions)[1].astype(float)
    c, s = np.trace(matrix), matrix.sum()
    predicted, actual = matrix.sum(axis=0), matrix.sum(axis=1)
    numerator = c * s - predicted @ actual
    denominator = math.sqrt((s * s - predicted @ predicted) * (s * s - actual @ actual))
    return float(numerator / denominator) if denominator > 0 else 0.0


def average_precision(positives: Sequence[bool], scores: Sequence[float]) -> float:
    """Area under the precision-recall curve as average precision (scikit-learn's
    average_precision_score): sum over distinct score thresholds t, from high to low, of
    (R(t) - R(t_previous)) * P(t), where P and R count every item scoring >= t as flagged.
    NaN when there is no positive (recall is undefined)."""
    y, s = np.asarray(positives, dtype=bool), np.asarray(scores, dtype=float)
    total = int(y.sum())
    if total == 0:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    y, s = y[order], s[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]  # ties enter together
    true_pos = np.cumsum(y)[last_of_tie]
    flagged = last_of_tie + 1
    precision, recall = true_pos / flagged, true_pos / total
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def f1_binary(references: Sequence, predictions: Sequence, positive: str) -> float:
    """F1 of the positive class: 2 TP / (2 TP + FP + FN); 0 when there is no positive at all."""
    tp = sum(r == positive and p == positive for r, p in zip(references, predictions))
    wrong = sum((r == positive) != (p == positive) for r, p in zip(references, predictions))
    return 2 * tp / (2 * tp + wrong) if tp + wrong else 0.0


def _labels(samples: Sequence[Sample]) -> tuple[list, list]:
    return [s.reference for s in samples], [s.extracted for s in samples]


# ---- sampling ----------------------------------------------------------------------------------


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct: 1 - C(n-c, k) / C(n, k), as a product."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0  # every k-subset holds a correct sample
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product


# ---- text --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _rouge_scorer(kinds: tuple[str, ...]):
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(kinds), use_stemmer=True)


def rouge_scores(
    prediction: str, reference: str, kinds: Sequence[str] = ("rouge1", "rouge2", "rougeL")
) -> dict[str, float]:
    """F-measures from rouge-score (Porter stemming on, as in the summarisation papers)."""
    scores = _rouge_scorer(tuple(kinds)).score(reference, prediction)
    return {kind: score.fmeasure for kind, score in scores.items()}


def corpus_bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    import sacrebleu

    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score)


def corpus_chrf(predictions: Sequence[str], references: Sequence[str]) -> float:
    import sacrebleu

    return float(sacrebleu.corpus_chrf(list(predictions), [list(references)]).score)


def sentence_score(kind: str, prediction: str, reference: str) -> float:
    """One answer's bleu/chrf (sacrebleu's sentence scores, 0-100) or rouge1/rouge2/rougeL (0-1)."""
    if kind in ("bleu", "chrf"):
        import sacrebleu

        scorer = sacrebleu.sentence_bleu if kind == "bleu" else sacrebleu.sentence_chrf
        return float(scorer(prediction, [reference]).score)
    return rouge_scores(prediction, reference, (kind,))[kind]


def _hypotheses(samples: Sequence[Sample]) -> tuple[list[str], list[str]]:
    return [s.output.strip() for s in samples], [str(s.reference) for s in samples]


# ---- perplexity --------------------------------------------------------------------------------


def _total(samples: Sequence[Sample], key: str) -> float:
    return float(sum(s.extra[key] for s in samples))


def perplexity(samples: Sequence[Sample]) -> float:
    """Token-level: exp of the mean negative log-likelihood over every scored token of every document."""
    return math.exp(-_total(samples, "logprob") / max(1.0, _total(samples, "n_tokens")))


def bits_per_byte(samples: Sequence[Sample]) -> float:
    """Tokenizer-independent: total negative log-likelihood in bits over the text's UTF-8 bytes."""
    return -_total(samples, "logprob") / (math.log(2) * max(1.0, _total(samples, "n_bytes")))


# ---- instruction following ----------------------------------------------------------------------


def instruction_level(samples: Sequence[Sample], key: str) -> float:
    followed = [ok for s in samples for ok in s.extra[key]]
    return sum(followed) / len(followed) if followed else float("nan")


# ---- registry ----------------------------------------------------------------------------------

Aggregation = Callable[[Sequence[Sample], str], float]


def _lc_win_rate(samples: Sequence[Sample], name: str) -> float:
    from posttrain.eval.length_control import length_controlled_win_rate

    judged = [s for s in samples if "preference" in s.scores]
    return length_controlled_win_rate(
        [s.scores["preference"] for s in judged], [s.extra["length_diff"] for s in judged]
    )


def judge_rating(samples: Sequence[Sample], name: str) -> float:
    """Mean of the PARSED judge ratings (extra['ratings'], None where the judge gave no score: those
    are counted by the `unparsed` metric, never averaged in as 0). The metric's name picks the
    subset: `score` all, `score_turn_<k>` turn k, `score_<category>` one category's turns."""
    picked = []
    for sample in samples:
        ratings = list(enumerate(sample.extra["ratings"], start=1))
        if name.startswith("score_turn_"):
            ratings = [(k, r) for k, r in ratings if k == int(name.rsplit("_", 1)[1])]
        elif name != "score" and name != f"score_{sample.extra['category']}":
            ratings = []
        picked += [r for _, r in ratings if r is not None]
    return float(np.mean(picked)) if picked else float("nan")


AGGREGATIONS: dict[str, Aggregation] = {
    "sum": lambda samples, name: float(sum(s.scores[name] for s in samples)),
    "judge_rating": judge_rating,
    "mean": mean_of,
    "count": count_of,
    "f1_macro": lambda samples, name: f1_macro(*_labels(samples)),
    "f1_weighted": lambda samples, name: f1_weighted(*_labels(samples)),
    "mcc": lambda samples, name: matthews_corrcoef(*_labels(samples)),
    "bleu": lambda samples, name: corpus_bleu(*_hypotheses(samples)),
    "chrf": lambda samples, name: corpus_chrf(*_hypotheses(samples)),
    "perplexity": lambda samples, name: perplexity(samples),
    "bits_per_byte": lambda samples, name: bits_per_byte(samples),
    "instruction_level_strict": lambda samples, name: instruction_level(samples, "followed_strict"),
    "instruction_level_loose": lambda samples, name: instruction_level(samples, "followed_loose"),
    "lc_win_rate": _lc_win_rate,
    # Llama Guard (tasks/llama_guard.py): the reference is "unsafe"/"safe", extra["p_unsafe"] the score
    "auprc": lambda samples, name: average_precision(
        [s.reference == "unsafe" for s in samples], [s.extra["p_unsafe"] for s in samples]
    ),
    "f1_unsafe": lambda samples, name: f1_binary(*_labels(samples), positive="unsafe"),
    "ner_f1": lambda samples, name: _ner_f1(samples),
}


def _ner_f1(samples: Sequence[Sample]) -> float:
    from posttrain.eval.model_metrics.ner import entity_f1

    return entity_f1([s.extra["ner_reference"] for s in samples], [s.extra["ner_predicted"] for s in samples])


def compute(metric: Metric, samples: Sequence[Sample]) -> float:
    return AGGREGATIONS[metric.aggregate](samples, metric.name)


def resampled(metric: Metric, samples: Sequence[Sample], draws: np.ndarray) -> np.ndarray:
    """The metric on each bootstrap resample (each row of `draws` holds indices into samples).
    Means are vectorised; BLEU/chrF re-aggregate sacrebleu's per-sentence statistics (the method
    sacrebleu's own significance tests use) instead of re-scoring every sentence each time."""
    if metric.aggregate == "mean":
        values = scored_values(samples, metric.name)
        if not np.isnan(values).any():
            return values[draws].mean(axis=1)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a resample of failures only: NaN
            return np.nanmean(values[draws], axis=1)
    if metric.aggregate in ("bleu", "chrf"):
        fast = _sacrebleu_resampled(metric.aggregate, samples, draws)
        if fast is not None:
            return fast
    return np.array([compute(metric, [samples[i] for i in row]) for row in draws])


def _sacrebleu_resampled(kind: str, samples: Sequence[Sample], draws: np.ndarray) -> np.ndarray | None:
    from sacrebleu.metrics import BLEU, CHRF

    scorer = BLEU() if kind == "bleu" else CHRF()
    hypotheses, references = _hypotheses(samples)
    try:
        stats = scorer._extract_corpus_statistics(hypotheses, [references])
        return np.array([scorer._aggregate_and_compute([stats[i] for i in row]).score for row in draws])
    except AttributeError:  # a sacrebleu without these internals: the caller re-scores
        return None


def standard_error(
    metric: Metric, samples: Sequence[Sample], seed: int = 0, iterations: int = BOOTSTRAP_ITERS
) -> float | None:
    """None where it is undefined (fewer than two scored samples) and for counts."""
    if metric.aggregate == "count":
        return None
    if metric.aggregate == "mean":
        values = scored_values(samples, metric.name)
        values = values[~np.isnan(values)]
        return float(values.std(ddof=1) / math.sqrt(values.size)) if values.size >= 2 else None
    n = len(samples)
    if n < 2:
        return None
    draws = np.random.default_rng(seed).integers(0, n, size=(iterations, n))
    values = resampled(metric, samples, draws)
    values = values[~np.isnan(values)]  # a resample where the metric is undefined (AUPRC without positives)
    return float(np.std(values, ddof=1)) if values.size >= 2 else None


def summarise(metrics: Sequence[Metric], samples: Sequence[Sample], seed: int = 0) -> dict[str, dict]:
    """{name: {value, stderr, aggregate, higher_is_better}} for results.json."""
    out = {}
    for metric in metrics:
        out[metric.name] = {
            "value": compute(metric, samples),
            "stderr": standard_error(metric, samples, seed),
            "aggregate": metric.aggregate,
            "higher_is_better": metric.higher_is_better,
        }
    return out
