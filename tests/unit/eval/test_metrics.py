"""Metrics on fixed inputs: F1 and MCC against hand computation, ROUGE and BLEU/chrF against their
libraries, standard errors, perplexity totals, and the length-controlled win rate."""

import math

import numpy as np
import pytest

from posttrain.eval.length_control import length_controlled_win_rate
from posttrain.eval.metrics import (
    Metric,
    compute,
    f1_macro,
    f1_weighted,
    matthews_corrcoef,
    resampled,
    rouge_scores,
    standard_error,
    summarise,
)
from posttrain.eval.sample import Sample

REFS = ["a", "a", "a", "b", "b", "c"]
PREDS = ["a", "a", "b", "b", "c", "c"]


def test_f1_by_hand():
    # per class: a P=1 R=2/3 F1=0.8; b P=1/2 R=1/2 F1=0.5; c P=1/2 R=1 F1=2/3; supports 3, 2, 1
    assert f1_macro(REFS, PREDS) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert f1_weighted(REFS, PREDS) == pytest.approx((3 * 0.8 + 2 * 0.5 + 1 * 2 / 3) / 6)


def test_mcc_by_hand():
    # multi-class: c=4 correct of s=6; predicted counts (2,2,2), true counts (3,2,1)
    # (4*6 - (6+4+2)) / sqrt((36-12) * (36-14)) = 12 / sqrt(528)
    assert matthews_corrcoef(REFS, PREDS) == pytest.approx(12 / math.sqrt(528))
    # binary: TP=3 FN=1 FP=1 TN=5 -> (3*5 - 1*1) / sqrt(4*4*6*6) = 14/24
    refs = [1] * 4 + [0] * 6
    preds = [1, 1, 1, 0] + [1] + [0] * 5
    assert matthews_corrcoef(refs, preds) == pytest.approx(14 / 24)
    assert matthews_corrcoef(["x"] * 4, ["x"] * 4) == 0.0  # undefined -> 0, as sklearn


def test_rouge_by_hand_and_by_library():
    from rouge_score import rouge_scorer

    scores = rouge_scores("the cat sat", "the cat sat on the mat")
    assert scores["rouge1"] == pytest.approx(2 / 3)  # P = 3/3, R = 3/6
    assert scores["rouge2"] == pytest.approx(2 * 0.4 / 1.4)  # P = 2/2, R = 2/5
    expected = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True).score("the cat sat on the mat", "the cat sat")
    assert scores["rougeL"] == pytest.approx(expected["rougeL"].fmeasure)


def test_bleu_and_chrf_are_sacrebleu_corpus_scores():
    import sacrebleu

    hyps = ["the cat sat on the mat", "a dog runs in the park today", "hello there"]
    refs = ["the cat sat on a mat", "a dog is running in the park today", "hello there"]
    samples = [Sample("t", i, "", h, reference=r) for i, (h, r) in enumerate(zip(hyps, refs))]
    assert compute(Metric("bleu", "bleu"), samples) == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert compute(Metric("chrf", "chrf"), samples) == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score)
    draws = np.random.default_rng(0).integers(0, 3, size=(5, 3))
    for kind in ("bleu", "chrf"):  # bootstrap from sentence statistics = re-scoring each resample
        rescored = [compute(Metric(kind, kind), [samples[i] for i in row]) for row in draws]
        assert resampled(Metric(kind, kind), samples, draws) == pytest.approx(rescored)
    same = [Sample("t", 0, "", "an exact copy of it", reference="an exact copy of it")]
    assert compute(Metric("bleu", "bleu"), same) == pytest.approx(100.0)


def test_standard_errors():
    values = [1.0, 0.0, 1.0, 1.0, 0.0]
    samples = [Sample("t", i, "", "", scores={"acc": v}) for i, v in enumerate(values)]
    assert standard_error(Metric("acc"), samples) == pytest.approx(np.std(values, ddof=1) / math.sqrt(5))
    labelled = [Sample("t", i, "", "", reference=r, extracted=p) for i, (r, p) in enumerate(zip(REFS, PREDS))]
    f1 = Metric("f1_macro", "f1_macro")
    first, again = standard_error(f1, labelled, seed=3), standard_error(f1, labelled, seed=3)
    assert first == again and first > 0  # seeded bootstrap
    assert standard_error(Metric("acc"), samples[:1]) is None
    summary = summarise([Metric("acc")], samples)
    assert summary["acc"]["value"] == pytest.approx(0.6) and summary["acc"]["aggregate"] == "mean"


def test_perplexity_and_bits_per_byte_pool_tokens_over_documents():
    samples = [
        Sample("t", 0, "", "", extra={"logprob": -4.0, "n_tokens": 2, "n_bytes": 10}),
        Sample("t", 1, "", "", extra={"logprob": -2.0, "n_tokens": 2, "n_bytes": 6}),
    ]
    assert compute(Metric("perplexity", "perplexity"), samples) == pytest.approx(math.exp(6 / 4))
    assert compute(Metric("bits_per_byte", "bits_per_byte"), samples) == pytest.approx(6 / math.log(2) / 16)


def test_length_controlled_win_rate_removes_a_pure_length_preference():
    # The judge prefers whichever answer is longer (0.9 vs 0.1); the model is longer 8 times in 10,
    # so its raw preference is 0.74 -- at equal length it has no edge.
    diffs = [100] * 8 + [-100] * 2
    prefs = [0.9] * 8 + [0.1] * 2
    assert np.mean(prefs) == pytest.approx(0.74)
    assert length_controlled_win_rate(prefs, diffs) == pytest.approx(0.5, abs=1e-3)
    # A preference unrelated to length is left as it is.
    assert length_controlled_win_rate([0.8] * 10, diffs) == pytest.approx(0.8, abs=1e-3)
