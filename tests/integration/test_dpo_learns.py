"""Preference optimisation learns: after a short SFT on a parity task (the format is learned, the
rule only partly), DPO and SimPO on (correct, wrong) answer pairs raise the share of held-out pairs
whose correct answer the policy prefers, i.e. logp(chosen) > logp(rejected)."""

import json
import random

import pytest
import torch
from transformers import AutoModelForCausalLM

from posttrain.config.recipe import load_recipe
from posttrain.data.batching import IGNORE
from posttrain.data.preference import tokenize_completion
from posttrain.model.load import load_tokenizer
from posttrain.model.logprobs import token_logprobs
from posttrain.stages import dpo, sft
from tests.integration.conftest import write_jsonl

STEPS, BATCH = 20, 16  # the nine objectives' runs below


def _question(n):
    return [{"role": "user", "content": f"Is {n} even or odd?"}]


def _answers(n):
    right, wrong = ("even", "odd") if n % 2 == 0 else ("odd", "even")
    return right, wrong


@pytest.fixture(scope="module")
def parity(tmp_path_factory, tiny_default_dir):
    root = tmp_path_factory.mktemp("parity")
    numbers = list(range(100, 1000))
    random.Random(0).shuffle(numbers)
    test, train = numbers[:100], numbers[100:]
    sft_rows = [{"messages": _question(n) + [{"role": "assistant", "content": _answers(n)[0]}]} for n in train]
    pairs = [
        {"prompt": _question(n)[0]["content"], "chosen": _answers(n)[0], "rejected": _answers(n)[1]} for n in train
    ]
    write_jsonl(root / "sft.jsonl", sft_rows)
    write_jsonl(root / "pairs.jsonl", pairs)
    # one pass of the short runs below; REBEL reads each pair's rewards from the data (as `posttrain
    # score` writes them beside the pair): a verifier's 1 / 0
    short = pairs[: STEPS * BATCH]
    write_jsonl(root / "short_pairs.jsonl", short)
    write_jsonl(root / "scored_pairs.jsonl", [{**p, "chosen_score": 1.0, "rejected_score": 0.0} for p in short])
    sft.run(
        load_recipe(
            None,
            [
                f"model={tiny_default_dir}",
                f"data=[{root / 'sft.jsonl'}]",
                "train.micro_batch_size=16",
                "train.max_steps=10",
                "train.lr=1e-3",
                "train.warmup_steps=5",
            ],
        ),
        output_dir=str(root / "sft"),
    )
    return root, test


def _pairwise_accuracy(model_dir, numbers):
    tok = load_tokenizer(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    wins = 0
    with torch.no_grad():
        for n in numbers:
            scores = []
            for answer in _answers(n):
                ex = tokenize_completion(tok, _question(n), [{"role": "assistant", "content": answer}])
                ids, labels = torch.tensor([ex.input_ids]), torch.tensor([ex.labels])
                scores.append(float(token_logprobs(model, ids, labels).sum()))
            wins += scores[0] > scores[1]
    assert all(label == IGNORE for label in ex.labels[:3])  # the prompt is not scored
    return wins / len(numbers)


@pytest.mark.parametrize(
    "loss, extra", [("sigmoid", ["preference.beta=0.5"]), ("simpo", ["preference.beta=2.0", "preference.gamma=1.0"])]
)
def test_preference_optimisation_raises_held_out_pair_accuracy(parity, loss, extra):
    root, test = parity
    before = _pairwise_accuracy(root / "sft" / "final", test)
    recipe = load_recipe(
        None,
        [
            f"model={root / 'sft' / 'final'}",
            f"data=[{root / 'pairs.jsonl'}]",
            "train.micro_batch_size=16",
            "train.max_steps=80",
            "train.lr=2e-4",
            "train.warmup_steps=5",
            f"preference.loss={loss}",
            *extra,
        ],
    )
    dpo.run(recipe, output_dir=str(root / loss))
    after = _pairwise_accuracy(root / loss / "final", test)
    assert after >= before + 0.15, (before, after)  # measured: 0.51 -> 0.74 (DPO), 0.75 (SimPO)


def test_kto_raises_held_out_pair_accuracy(parity):
    """KTO on the same pairs read as unpaired examples (chosen desirable, rejected undesirable)."""
    from posttrain.stages import kto

    root, test = parity
    before = _pairwise_accuracy(root / "sft" / "final", test)
    recipe = load_recipe(
        None,
        [
            f"model={root / 'sft' / 'final'}",
            f"data=[{root / 'pairs.jsonl'}]",
            "train.micro_batch_size=16",
            "train.max_steps=160",
            "train.lr=5e-4",
            "train.warmup_steps=5",
            "preference.beta=0.1",
        ],
    )
    kto.run(recipe, output_dir=str(root / "kto"))
    after = _pairwise_accuracy(root / "kto" / "final", test)
    print(f"kto: held-out pair accuracy {before:.2f} -> {after:.2f}")
    assert after >= before + 0.15, (before, after)  # measured: 0.51 -> 0.77


# The other objectives in 20 steps of 16 pairs at lr 1e-3, each with settings that let its effect
# show that soon: IPO and REBEL regress the margin onto a target (1/(2 beta), and eta x the score
# difference), so a small target is met, and the training stops pulling, long before accuracy
# rises: beta 0.1 and eta 2 (at beta 0.5 / eta 1 they stayed at 0.53). SELM samples a reference
# response per prompt (4 tokens); REBEL reads its rewards from the data.
OBJECTIVES = [
    ("conservative", ["preference.beta=0.5", "preference.label_smoothing=0.1"]),
    ("robust", ["preference.beta=1.0", "preference.label_noise=0.1"]),
    ("hinge", ["preference.beta=0.5"]),
    ("ipo", ["preference.beta=0.1"]),
    ("dpo_norm", ["preference.beta=1.0"]),
    ("cpo", ["preference.beta=0.5"]),
    ("orpo", ["preference.orpo_lambda=1.0"]),
    ("selm", ["preference.beta=0.5", "preference.sample_max_new_tokens=4"]),
    ("rebel", ["preference.rebel_eta=2.0"]),
]


@pytest.fixture(scope="module")
def sft_accuracy(parity):
    root, test = parity
    return _pairwise_accuracy(root / "sft" / "final", test)


@pytest.mark.slow
@pytest.mark.parametrize("loss, extra", OBJECTIVES, ids=[name for name, _ in OBJECTIVES])
def test_each_objective_raises_held_out_pair_accuracy(parity, sft_accuracy, loss, extra):
    root, test = parity
    before = sft_accuracy
    data = root / ("scored_pairs.jsonl" if loss == "rebel" else "short_pairs.jsonl")
    recipe = load_recipe(
        None,
        [
            f"model={root / 'sft' / 'final'}",
            f"data=[{data}]",
            f"train.micro_batch_size={BATCH}",
            f"train.max_steps={STEPS}",
            "train.lr=1e-3",
            "train.warmup_steps=5",
            f"preference.loss={loss}",
            *extra,
        ],
    )
    dpo.run(recipe, output_dir=str(root / loss))
    after = _pairwise_accuracy(root / loss / "final", test)
    print(f"{loss}: held-out pair accuracy {before:.2f} -> {after:.2f}")
    assert after >= before + 0.1, (before, after)


@pytest.mark.slow
def test_logo_with_two_rejected_responses_raises_held_out_pair_accuracy(parity):
    """LOGO with M = 2 dis-preferred answers per prompt (the wrong parity and a non-answer) and its
    SFT term."""
    root, test = parity
    rows = [json.loads(line) for line in (root / "pairs.jsonl").read_text().splitlines()]
    for row in rows:
        row["rejected"] = [row["rejected"], "maybe"]
    write_jsonl(root / "logo_pairs.jsonl", rows)
    before = _pairwise_accuracy(root / "sft" / "final", test)
    recipe = load_recipe(
        None,
        [
            f"model={root / 'sft' / 'final'}",
            f"data=[{root / 'logo_pairs.jsonl'}]",
            "train.micro_batch_size=16",
            "train.max_steps=80",
            "train.lr=2e-4",
            "train.warmup_steps=5",
            "preference.loss=logo",
            "preference.beta=2.0",
            "preference.gamma=1.0",
            "preference.logo_sft_weight=0.1",
        ],
    )
    dpo.run(recipe, output_dir=str(root / "logo"))
    after = _pairwise_accuracy(root / "logo" / "final", test)
    print(f"held-out pair accuracy {before:.2f} -> {after:.2f}")
    assert after >= before + 0.15, (before, after)  # measured: 0.51 -> 0.75
