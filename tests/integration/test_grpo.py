"""GRPO learns from a verifier: after a short SFT on a parity task ("Is 347 even or odd?" ->
"odd"; the format is learned, the rule only partly), GRPO with an exact-match reward raises
held-out greedy accuracy. A second, short run exercises RLOO, the k3 KL term against a frozen
reference, two updates per batch (old-policy ratios) and per-token aggregation from the CLI."""

import json
import random

import pytest
from transformers import AutoModelForCausalLM

from posttrain.config.recipe import load_recipe
from posttrain.data.chat import tokenize_prompt
from posttrain.model.generate import GenerationConfig, generate_text
from posttrain.model.load import load_tokenizer
from posttrain.stages import grpo, sft
from tests.integration.conftest import run_cli, write_jsonl


def _question(n):
    return [{"role": "user", "content": f"Is {n} even or odd?"}]


def _answer(n):
    return "even" if n % 2 == 0 else "odd"


@pytest.fixture(scope="module")
def parity(tmp_path_factory, tiny_default_dir):
    root = tmp_path_factory.mktemp("grpo-parity")
    numbers = list(range(100, 1000))
    random.Random(0).shuffle(numbers)
    test, train = numbers[:100], numbers[100:]
    write_jsonl(
        root / "sft.jsonl", [{"messages": _question(n) + [{"role": "assistant", "content": _answer(n)}]} for n in train]
    )
    write_jsonl(
        root / "prompts.jsonl", [{"prompt": _question(n)[0]["content"], "reference": _answer(n)} for n in train]
    )
    sft.run(
        load_recipe(
            None,
            [
                f"model={tiny_default_dir}",
                f"data=[{root / 'sft.jsonl'}]",
                "train.micro_batch_size=16",
                "train.max_steps=20",
                "train.lr=1e-3",
                "train.warmup_steps=5",
            ],
        ),
        output_dir=str(root / "sft"),
    )
    return root, test


def _accuracy(model_dir, numbers):
    tok = load_tokenizer(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    prompts = [tokenize_prompt(tok, _question(n)) for n in numbers]
    texts = generate_text(model, tok, prompts, GenerationConfig(max_new_tokens=4, batch_size=len(prompts)))
    return sum(t.strip().lower() == _answer(n) for t, n in zip(texts, numbers)) / len(numbers)


def _metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_grpo_raises_held_out_accuracy(parity):
    root, test = parity
    before = _accuracy(root / "sft" / "final", test)
    recipe = load_recipe(
        None,
        [
            f"model={root / 'sft' / 'final'}",
            f"data=[{root / 'prompts.jsonl'}]",
            "grpo.rewards=[{name: exact_match}]",
            "grpo.group_size=8",
            "grpo.prompts_per_step=16",
            "grpo.max_new_tokens=4",
            "grpo.temperature=1.0",
            "grpo.samples_every=10",
            "train.micro_batch_size=64",
            "train.max_steps=40",
            "train.lr=2e-4",
            "train.schedule=constant",
        ],
    )
    grpo.run(recipe, output_dir=str(root / "grpo"))
    after = _accuracy(root / "grpo" / "final", test)
    rows = [r for r in _metrics(root / "grpo") if "reward" in r]
    curve = [round(r["reward"], 2) for r in rows]
    print(f"held-out accuracy {before:.2f} -> {after:.2f}; reward curve {curve}")
    # measured: greedy held-out 0.60 -> 0.73; sampled reward ~0.18 (first 10 steps) -> ~0.5 (last 10)
    assert after >= before + 0.1, (before, after, curve)
    assert sum(curve[-10:]) / 10 >= sum(curve[:10]) / 10 + 0.15, curve
    assert {"reward/exact_match", "accuracy", "clip_fraction", "entropy", "response_length"} <= set(rows[0])
    samples = (root / "grpo" / "samples.jsonl").read_text().splitlines()
    assert len(samples) == 4 * 2 * 8 and "completion" in json.loads(samples[0])  # steps 0,10,20,30


def test_rloo_kl_two_updates_from_the_cli(parity, tmp_path):
    root, _ = parity
    recipe = tmp_path / "grpo.yaml"
    recipe.write_text(
        f"model: {root / 'sft' / 'final'}\ndata: [{root / 'prompts.jsonl'}]\n"
        "train: {micro_batch_size: 8, max_steps: 4, lr: 1.0e-4}\n"
        "grpo:\n  rewards: [{name: exact_match, weight: 10}, {name: format, weight: 0.5, "
        "options: {pattern: '^(even|odd)$'}}]\n"
        "  group_size: 4\n  prompts_per_step: 4\n  max_new_tokens: 4\n  advantage: rloo\n"
        "  kl_coef: 0.1\n  kl_estimator: k3\n  updates_per_batch: 2\n  aggregation: token\n"
    )
    run_cli("grpo", recipe, "--output-dir", tmp_path / "run")
    rows = [r for r in _metrics(tmp_path / "run") if "kl" in r]
    assert len(rows) == 4 and all(r["kl"] >= 0 for r in rows)
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # the first update starts at the reference
    assert rows[0]["clip_fraction"] == 0.0  # ratio 1 on a batch's first update
    assert rows[0]["reward"] == rows[1]["reward"]  # the 2nd update reuses the batch of samples


def short_answer(sample, completion):
    """A user reward, named in the recipe by its dotted path."""
    return float(len(completion.split()) <= 2)


def test_every_reward_function_runs_in_one_recipe(parity, tmp_path, tiny_default_dir):
    """The registered rewards, a reward model and a user function, weighted, on rows that carry
    each verifier's fields: every term is scored and logged, and accuracy follows the first verifier."""
    from transformers import AutoModelForSequenceClassification

    root, _ = parity
    rm_dir = tmp_path / "rm"
    AutoModelForSequenceClassification.from_pretrained(tiny_default_dir, num_labels=1).save_pretrained(rm_dir)
    load_tokenizer(str(tiny_default_dir)).save_pretrained(rm_dir)
    rows = [json.loads(line) for line in (root / "prompts.jsonl").read_text().splitlines()[:8]]
    extra = {
        "numbers": [3, 5, 7],
        "target": 22,
        "instruction_id_list": ["punctuation:no_comma"],
        "kwargs": [{}],
        "code_context": {"a.py": "x = 1\n"},
        "oracle_new_content": {"a.py": "x = 2\n"},
    }
    write_jsonl(tmp_path / "prompts.jsonl", [{**row, **extra} for row in rows])
    terms = [
        "{name: exact_match}",
        "{name: math, weight: 0.5}",
        "{name: countdown}",
        "{name: ifeval}",
        "{name: similarity}",
        "{name: format, options: {pattern: '^(even|odd)'}}",
        "{name: exploration, weight: 0.1, options: {max_steps: 2}}",
        f"{{name: reward_model, weight: 0.01, options: {{path: '{rm_dir}', batch_size: 3}}}}",
        "{name: 'tests.integration.test_grpo:short_answer', label: short, verifier: false}",
    ]
    grpo.run(
        load_recipe(
            None,
            [
                f"model={root / 'sft' / 'final'}",
                f"data=[{tmp_path / 'prompts.jsonl'}]",
                f"grpo.rewards=[{', '.join(terms)}]",
                "grpo.group_size=4",
                "grpo.prompts_per_step=4",
                "grpo.max_new_tokens=4",
                "grpo.advantage=rloo",
                "train.micro_batch_size=16",
                "train.max_steps=1",
            ],
        ),
        output_dir=str(tmp_path / "run"),
    )
    row = next(r for r in _metrics(tmp_path / "run") if "reward" in r)
    labels = [
        "exact_match",
        "math",
        "countdown",
        "ifeval",
        "similarity",
        "format",
        "exploration",
        "reward_model",
        "short",
    ]
    assert all(f"reward/{label}" in row for label in labels)
    assert row["accuracy"] == row["reward/exact_match"]  # the first verifier decides accuracy
    weights = {"math": 0.5, "exploration": 0.1, "reward_model": 0.01}
    expected = sum(weights.get(label, 1.0) * row[f"reward/{label}"] for label in labels)
    assert row["reward"] == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("no_eos_reward", [None, -10.0])
def test_completions_cut_at_max_new_tokens_get_the_no_eos_reward(parity, tmp_path, no_eos_reward):
    """One new token cannot hold an answer and its end-of-turn token: every completion is cut.
    Tulu 3's penalty replaces their reward; unset, the verifier scores them as they are."""
    root, _ = parity
    grpo.run(
        load_recipe(
            None,
            [
                f"model={root / 'sft' / 'final'}",
                f"data=[{root / 'prompts.jsonl'}]",
                "grpo.rewards=[{name: exact_match}]",
                "grpo.group_size=4",
                "grpo.prompts_per_step=4",
                "grpo.max_new_tokens=1",
                f"grpo.no_eos_reward={'null' if no_eos_reward is None else no_eos_reward}",
                "train.micro_batch_size=16",
                "train.max_steps=1",
            ],
        ),
        output_dir=str(tmp_path / "run"),
    )
    row = next(r for r in _metrics(tmp_path / "run") if "reward" in r)
    assert row["truncated"] == 1.0 and row["response_length"] == 1.0
    if no_eos_reward is None:
        assert row["reward"] == row["reward/exact_match"] >= 0.0
    else:
        assert row["reward"] == no_eos_reward and row["reward/exact_match"] >= 0.0


def test_killed_run_resumes_exactly(parity, tmp_path):
    """Sampling seeded from (seed, batch), prompt order from (seed, epoch), the KL reference
    reloaded from the initial model: a run killed after step 5 and resumed from its step-4
    checkpoint (a multiple of updates_per_batch) logs what the uninterrupted run logged."""
    root, _ = parity
    recipe = tmp_path / "grpo.yaml"
    recipe.write_text(
        f"model: {root / 'sft' / 'final'}\ndata: [{root / 'prompts.jsonl'}]\n"
        "train: {micro_batch_size: 8, max_steps: 6, lr: 1.0e-4, save_every: 2}\n"
        "grpo: {rewards: [{name: exact_match}], group_size: 4, prompts_per_step: 4, max_new_tokens: 4,"
        " kl_coef: 0.1, updates_per_batch: 2, temperature: 0.7}\n"
    )
    keys = ("loss", "reward", "kl", "entropy", "clip_fraction", "grad_norm")
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    run_cli("grpo", recipe, "--output-dir", straight)
    proc = run_cli("grpo", recipe, "--output-dir", killed, env={"POSTTRAIN_KILL_AFTER_STEP": "5"}, check=False)
    assert proc.returncode == -9
    run_cli("grpo", recipe, "--output-dir", killed, "--resume")
    expected = {r["step"]: [r[k] for k in keys] for r in _metrics(straight) if "loss" in r}
    got = {r["step"]: [r[k] for k in keys] for r in _metrics(killed) if "loss" in r}
    assert sorted(got) == list(range(1, 7))
    for step in expected:
        assert got[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-6), step


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_sample_update_and_save(parity, tmp_path, strategy):
    """Under FSDP every forward gathers parameters from all ranks, so generation of different
    lengths on the two ranks would hang unless their decoding steps stay in lockstep (transformers'
    generate keeps them so for FSDP-managed models, synced_gpus; each rank makes the same number
    of generate calls); each rank samples its own half of a step's prompts; the saved weights are whole."""
    from safetensors.torch import load_file

    root, _ = parity
    recipe = tmp_path / "grpo.yaml"
    recipe.write_text(
        f"model: {root / 'sft' / 'final'}\ndata: [{root / 'prompts.jsonl'}]\n"
        f"train: {{micro_batch_size: 8, max_steps: 3, lr: 1.0e-4, distributed: {strategy}}}\n"
        "grpo: {rewards: [{name: exact_match}], group_size: 4, prompts_per_step: 4, max_new_tokens: 6,"
        " temperature: 1.0, kl_coef: 0.1}\n"
    )
    run_cli("grpo", recipe, "--output-dir", tmp_path / "run", "--num-processes", "2")
    rows = [r for r in _metrics(tmp_path / "run") if "reward" in r]
    assert [r["step"] for r in rows] == [1, 2, 3] and all(r["kl"] >= 0 for r in rows)
    saved = load_file(tmp_path / "run" / "final" / "model.safetensors")
    initial = load_file(root / "sft" / "final" / "model.safetensors")
    assert saved.keys() == initial.keys() and all(saved[k].shape == initial[k].shape for k in saved)
