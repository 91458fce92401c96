"""Reward models learn and are usable: a Bradley-Terry model on the tiny default Llama learns which
answer to "Is N even or odd?" is right for numbers it never saw; a regression model lowers
held-out MSE; bt_margin and scaled_bt read their annotations; a regression model initialises a
scaled-BT one with its head; reward-eval and score work on the trained model."""

import argparse
import json
import math
import random

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForSequenceClassification

from posttrain.config.recipe import ModelConfig, SourceConfig, load_recipe
from posttrain.data.reward import rated_responses, reward_pairs
from posttrain.model.load import load_tokenizer
from posttrain.model.reward_model import (
    load_reward_model,
    load_reward_model_dir,
    score_sequences,
)
from posttrain.scoring.cli import add_parsers
from posttrain.scoring.reward_eval import reward_eval_command
from posttrain.stages import reward
from tests.integration.conftest import write_jsonl

TINY_RECIPE = "recipes/tiny/reward.yaml"


def _answers(n):
    return ("even", "odd") if n % 2 == 0 else ("odd", "even")


def _parity_pair(n, **extra):
    right, wrong = _answers(n)
    return {"prompt": f"Is {n} even or odd?", "chosen": right, "rejected": wrong, **extra}


def _accuracy(model, tok, path):
    pairs = reward_pairs(tok, SourceConfig(path=str(path)), 512, "fail")
    sequences = [s for p in pairs for s in (p.chosen, p.rejected)]
    scores = score_sequences(model, sequences, tok.pad_token_id, 32)
    return float((scores[0::2, 0] > scores[1::2, 0]).float().mean())


@pytest.fixture(scope="module")
def parity_rm(tmp_path_factory, tiny_default_dir):
    """The shipped tiny recipe on parity pairs: 800 numbers to train on, 100 held out."""
    root = tmp_path_factory.mktemp("parity-rm")
    numbers = list(range(100, 1000))
    random.Random(0).shuffle(numbers)
    held_out = write_jsonl(root / "eval.jsonl", [_parity_pair(n) for n in numbers[:100]])
    train = write_jsonl(root / "train.jsonl", [_parity_pair(n) for n in numbers[100:]])
    tok = load_tokenizer(str(tiny_default_dir))
    fresh = load_reward_model(ModelConfig(path=str(tiny_default_dir)), ["reward"], tok.pad_token_id).eval()
    before = _accuracy(fresh, tok, held_out)
    recipe = load_recipe(
        TINY_RECIPE,
        [f"model={tiny_default_dir}", f"data.sources.0.path={train}", f"data.eval_sources.0.path={held_out}"],
    )
    metrics = reward.run(recipe, output_dir=str(root / "run"))
    return {
        "root": root,
        "final": root / "run" / "final",
        "held_out": held_out,
        "numbers": numbers[:100],
        "before": before,
        "metrics": metrics,
    }


def test_bradley_terry_model_ranks_the_right_answer_on_held_out_numbers(parity_rm):
    before, after = parity_rm["before"], parity_rm["metrics"]["eval_accuracy"]
    assert before <= 0.65 and after >= 0.9, (before, after)  # measured: 0.49 -> 1.00
    model = AutoModelForSequenceClassification.from_pretrained(parity_rm["final"]).eval()
    tok = load_tokenizer(str(parity_rm["final"]))
    assert model.config.num_labels == 1 and model.config.pad_token_id == tok.pad_token_id
    assert _accuracy(model, tok, parity_rm["held_out"]) == pytest.approx(after)
    logged = [json.loads(line) for line in (parity_rm["root"] / "run" / "metrics.jsonl").open()]
    assert {"loss", "accuracy", "margin"} <= set(logged[0])
    assert {"eval_loss", "eval_accuracy", "eval_margin"} <= set(logged[-1])


def test_reward_eval_reports_accuracy_per_category_and_section(parity_rm, tmp_path):
    numbers = parity_rm["numbers"]
    rows = (
        [_parity_pair(n, subset="alpacaeval-easy") for n in numbers[:30]]
        + [_parity_pair(n, subset="math-prm") for n in numbers[30:50]]
        + [_parity_pair(n, subset="hep-python") for n in numbers[50:60]]
        + [
            {
                "prompt": f"Is {n} even or odd?",
                "chosen": _answers(n)[1],
                "rejected": _answers(n)[0],
                "category": "flipped",
            }
            for n in numbers[60:70]
        ]
    )
    data = write_jsonl(tmp_path / "bench.jsonl", rows)
    doc = reward_eval_command(str(parity_rm["final"]), str(data), batch_size=16, output_dir=str(tmp_path / "out"))
    assert json.loads((tmp_path / "out" / "results.json").read_text())["mean"] == doc["mean"]
    acc = {name: c["accuracy"] for name, c in doc["categories"].items()}
    assert doc["categories"]["math-prm"]["total"] == 20 and doc["pairs"] == 70
    assert acc["alpacaeval-easy"] >= 0.9 and acc["flipped"] <= 0.1
    reasoning = (984 * acc["math-prm"] + 164 * acc["hep-python"]) / (984 + 164)  # RewardBench weights
    assert doc["groups"] == pytest.approx(
        {"chat": acc["alpacaeval-easy"], "reasoning": reasoning, "flipped": acc["flipped"]}
    )
    assert doc["mean"] == pytest.approx(sum(doc["groups"].values()) / 3)
    scores = [json.loads(line) for line in (tmp_path / "out" / "scores.jsonl").open()]
    assert len(scores) == 70 and scores[0]["category"] == "alpacaeval-easy"


def test_score_writes_best_vs_worst_pairs(parity_rm, tmp_path):
    numbers = parity_rm["numbers"][:6]
    rows = [{"prompt": f"Is {n} even or odd?", "responses": ["even", "odd"]} for n in numbers]
    conversation = [{"role": "user", "content": "Is 123 even or odd?"}]
    rows += [
        {"prompt": conversation, "completions": ["even", "odd"]},
        {"prompt": "Is 124 even or odd?", "responses": ["even", "even"]},  # all tie: skipped
        {"prompt": "Is 125 even or odd?", "responses": ["odd"]},
    ]  # nothing to pair
    data = write_jsonl(tmp_path / "responses.jsonl", rows)
    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(dest="command"))
    out = tmp_path / "pairs.jsonl"
    args = parser.parse_args(
        ["score", str(parity_rm["final"]), "--data", str(data), "--out", str(out), "--batch-size", "4", "--quiet"]
    )
    args.tool_run(args)
    written = [json.loads(line) for line in out.open()]
    assert len(written) == 7
    for n, row in zip(numbers, written):
        assert row["prompt"] == f"Is {n} even or odd?" and row["chosen"] == _answers(n)[0]
        assert row["chosen_score"] > row["rejected_score"]
    assert written[6]["chosen"] == [{"role": "assistant", "content": "odd"}]  # conversational in, out


def _helpsteer_rows(count, seed):
    """verbosity = words - 1 (always annotated); helpfulness = 4 for yes, 1 for no (2 rows in 3)."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        word, words = rng.choice(["yes", "no"]), rng.randint(1, 5)
        row = {
            "prompt": f"Do you agree with rule {rng.randint(1, 99)}?",
            "response": " ".join([word] * words),
            "verbosity": words - 1,
        }
        rows.append({**row, "helpfulness": 4 if word == "yes" else 1} if i % 3 else row)
    return rows


@pytest.fixture(scope="module")
def regression_rm(tmp_path_factory, tiny_dir):
    root = tmp_path_factory.mktemp("regression-rm")
    held_out = write_jsonl(root / "eval.jsonl", _helpsteer_rows(40, seed=1))
    train = write_jsonl(root / "train.jsonl", _helpsteer_rows(200, seed=0))
    metrics = reward.run(
        load_recipe(
            None,
            [
                f"model={tiny_dir}",
                f"data.sources=[{train}]",
                f"data.eval_sources=[{held_out}]",
                "reward.loss=regression",
                "reward.attributes=[verbosity, helpfulness]",
                "train.micro_batch_size=16",
                "train.max_steps=60",
                "train.lr=3e-3",
                "train.schedule=constant",
                "train.warmup_steps=5",
                "log.tensorboard=false",
            ],
        ),
        output_dir=str(root / "run"),
    )
    return {"final": root / "run" / "final", "held_out": held_out, "metrics": metrics}


def _masked_mse(model_dir, held_out, attributes):
    model, tok = load_reward_model_dir(str(model_dir))
    rated = rated_responses(tok, SourceConfig(path=str(held_out)), attributes, 512, "fail")
    predicted = score_sequences(model, [r.input_ids for r in rated], tok.pad_token_id, 16)
    mask = torch.tensor([r.annotated for r in rated])
    return float(((predicted - torch.tensor([r.targets for r in rated]))[mask] ** 2).mean()), mask


def test_regression_model_lowers_held_out_mse(regression_rm, tiny_dir, tmp_path):
    tok = load_tokenizer(str(tiny_dir))
    fresh = load_reward_model(ModelConfig(path=str(tiny_dir)), ["verbosity", "helpfulness"], tok.pad_token_id)
    fresh.save_pretrained(tmp_path / "fresh")
    tok.save_pretrained(tmp_path / "fresh")
    before, mask = _masked_mse(tmp_path / "fresh", regression_rm["held_out"], ["verbosity", "helpfulness"])
    after, _ = _masked_mse(regression_rm["final"], regression_rm["held_out"], ["verbosity", "helpfulness"])
    assert after == pytest.approx(regression_rm["metrics"]["eval_loss"], rel=1e-4)
    best_constant = 2.0  # the held-out targets' pooled variance: predicting each attribute's mean
    assert after < before / 3 and after < 0.8 * best_constant, (before, after)  # measured: 8.1 -> 1.37
    assert mask.sum() < mask.numel()  # missing helpfulness was masked, not scored


@pytest.mark.parametrize("reset_head", [False, True])
def test_scaled_bt_starts_from_a_regression_models_head(regression_rm, tmp_path, reset_head):
    """Initialised from the regression model with its head kept (and no training to speak of:
    lr 1e-12), the margins are that model's helpfulness differences; with the head reset they
    are not."""
    rng = random.Random(2)
    pairs = [
        {
            "prompt": f"Do you agree with rule {rng.randint(1, 99)}?",
            "chosen": "yes " * k,
            "rejected": "no " * k,
            "strength": rng.choice([1, 2, 3]),
        }
        for k in [rng.randint(1, 5) for _ in range(16)]
    ]
    data = write_jsonl(tmp_path / "pairs.jsonl", pairs)
    metrics = reward.run(
        load_recipe(
            None,
            [
                f"model={regression_rm['final']}",
                f"data.sources=[{data}]",
                f"data.eval_sources=[{data}]",
                "reward.loss=scaled_bt",
                "reward.score_attribute=helpfulness",
                f"reward.reset_head={reset_head}",
                "train.micro_batch_size=8",
                "train.max_steps=1",
                "train.lr=1e-12",
                "log.tensorboard=false",
            ],
        ),
        output_dir=str(tmp_path / "run"),
    )
    labels = AutoModelForSequenceClassification.from_pretrained(tmp_path / "run" / "final").config.id2label
    assert labels == {0: "verbosity", 1: "helpfulness"}
    regression, tok = load_reward_model_dir(str(regression_rm["final"]))
    scored = reward_pairs(tok, SourceConfig(path=str(data)), 512, "fail")
    helpfulness = score_sequences(
        regression, [s for p in scored for s in (p.chosen, p.rejected)], tok.pad_token_id, 16
    )[:, 1]
    margin = float((helpfulness[0::2] - helpfulness[1::2]).mean())  # trained towards 4 - 1 = 3
    if reset_head:
        assert abs(metrics["eval_margin"] - margin) > 0.5, (metrics, margin)
    else:
        assert metrics["eval_margin"] == pytest.approx(margin, rel=1e-4) and margin > 2.0


@pytest.mark.parametrize("loss, field", [("bt_margin", "margin"), ("scaled_bt", "strength"), ("bradley_terry", None)])
def test_pairwise_losses_read_their_annotations(tiny_dir, tmp_path, loss, field):
    """The final model is the one evaluated at the last step, so its scores give the eval loss."""
    rows = [_parity_pair(n, margin=0.5 * (n % 4), strength=1 + n % 3) for n in range(100, 124)]
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    metrics = reward.run(
        load_recipe(
            None,
            [
                f"model={tiny_dir}",
                f"data.sources=[{data}]",
                f"data.eval_sources=[{data}]",
                f"reward.loss={loss}",
                "train.micro_batch_size=8",
                "train.max_steps=1",
                "log.tensorboard=false",
            ],
        ),
        output_dir=str(tmp_path / "run"),
    )
    model, tok = load_reward_model_dir(str(tmp_path / "run" / "final"))
    pairs = reward_pairs(tok, SourceConfig(path=str(data)), 512, "fail")
    sequences = [s for p in pairs for s in (p.chosen, p.rejected)]
    scores = score_sequences(model, sequences, tok.pad_token_id, 16)[:, 0]
    diff = scores[0::2] - scores[1::2]
    annotation = torch.tensor([float(r[field]) for r in rows]) if field else None
    expected = {
        "bt_margin": lambda: -F.logsigmoid(diff - annotation),
        "scaled_bt": lambda: -annotation * F.logsigmoid(diff),
        "bradley_terry": lambda: -F.logsigmoid(diff),
    }[loss]().mean()
    assert metrics["eval_loss"] == pytest.approx(float(expected), rel=1e-4)
    assert metrics["eval_margin"] == pytest.approx(float(diff.mean()), abs=1e-5)
    assert not math.isnan(metrics["eval_accuracy"])
