"""PPO (grpo.algorithm: ppo): a killed run resumes exactly, critic weights and optimizer state
included; a critic with another tokenizer is a one-line error; PPO from a partly trained model
raises held-out accuracy on the parity task (slow); 2 processes (DDP or FSDP2) log 1
process's losses and save its weights."""

import pytest
import torch
from safetensors.torch import load_file

from posttrain.config.recipe import load_recipe
from posttrain.errors import UserError
from posttrain.stages import grpo
from tests.integration.conftest import run_cli, write_jsonl
from tests.integration.test_grpo import _accuracy, _metrics, parity  # noqa: F401 (a fixture)


def _prompts(tmp_path):
    return write_jsonl(
        tmp_path / "prompts.jsonl", [{"prompt": f"Is {n} even or odd?", "reference": "even"} for n in range(100, 140)]
    )


@pytest.mark.slow  # three CLI runs
def test_killed_ppo_run_resumes_exactly(tmp_path, tiny_dir):
    recipe = tmp_path / "ppo.yaml"
    recipe.write_text(
        f"model: {tiny_dir}\ndata: [{_prompts(tmp_path)}]\n"
        "train: {micro_batch_size: 4, max_steps: 4, lr: 1.0e-3, save_every: 2}\n"
        "grpo: {algorithm: ppo, critic: separate, rewards: [{name: 'tests.integration.test_grpo:short_answer'}],"
        " group_size: 2,"
        " prompts_per_step: 4, max_new_tokens: 4, kl_coef: 0.1, temperature: 1.0, vf_coef: 0.5}\n"
    )
    keys = ("loss", "value_loss", "policy_loss", "kl", "value", "grad_norm")
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    run_cli("grpo", recipe, "--output-dir", straight)
    proc = run_cli("grpo", recipe, "--output-dir", killed, env={"POSTTRAIN_KILL_AFTER_STEP": "3"}, check=False)
    assert proc.returncode == -9
    checkpoint = killed / "checkpoints" / "step-00000002"
    value_weights = load_file(checkpoint / "auxiliary.safetensors")
    assert value_weights and all(k.startswith("critic.") for k in value_weights)
    assert not any(k.startswith("critic.") for k in load_file(checkpoint / "model.safetensors"))
    run_cli("grpo", recipe, "--output-dir", killed, "--resume")
    expected = {r["step"]: [r[k] for k in keys] for r in _metrics(straight) if "loss" in r}
    got = {r["step"]: [r[k] for k in keys] for r in _metrics(killed) if "loss" in r}
    assert sorted(got) == [1, 2, 3, 4] and max(v[1] for v in expected.values()) > 0
    for step in expected:
        assert got[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-6), step


def test_value_head_on_the_policy_trains_and_is_saved_beside_it(tmp_path, tiny_dir):
    recipe = load_recipe(
        None,
        [
            f"model={tiny_dir}",
            f"data=[{_prompts(tmp_path)}]",
            "grpo.algorithm=ppo",
            "grpo.critic=head",
            "grpo.rewards=[{name: 'tests.integration.test_grpo:short_answer'}]",
            "grpo.group_size=2",
            "grpo.prompts_per_step=4",
            "grpo.max_new_tokens=4",
            "grpo.kl_coef=0.1",
            "train.micro_batch_size=8",
            "train.max_steps=2",
            "train.lr=1e-2",
        ],
    )
    grpo.run(recipe, output_dir=str(tmp_path / "run"))
    head = load_file(tmp_path / "run" / "final" / "auxiliary.safetensors")
    assert set(head) == {"value_head.weight", "value_head.bias"}
    assert head["value_head.weight"].abs().sum() > 0  # zero-initialised, then trained
    rows = [r for r in _metrics(tmp_path / "run") if "value_loss" in r]
    assert len(rows) == 2 and rows[0]["value"] == 0.0 and rows[1]["kl"] != 0.0


def test_critic_with_another_tokenizer_is_a_user_error(tmp_path, tiny_dir):
    import shutil

    from posttrain.model.load import load_tokenizer

    critic = tmp_path / "critic"
    shutil.copytree(tiny_dir, critic)
    tokenizer = load_tokenizer(str(critic))
    tokenizer.add_tokens(["<critic-only>"])
    tokenizer.save_pretrained(critic)
    recipe = load_recipe(
        None,
        [
            f"model={tiny_dir}",
            f"data=[{_prompts(tmp_path)}]",
            "grpo.algorithm=ppo",
            f"grpo.critic_model={critic}",
            "train.max_steps=1",
        ],
    )
    with pytest.raises(UserError, match="its tokenizer differs from the policy's"):
        grpo.run(recipe, output_dir=str(tmp_path / "run"))


@pytest.mark.slow
def test_ppo_raises_held_out_accuracy(parity):  # noqa: F811
    root, test = parity
    before = _accuracy(root / "sft" / "final", test)
    recipe = load_recipe(
        None,
        [
            f"model={root / 'sft' / 'final'}",
            f"data=[{root / 'prompts.jsonl'}]",
            "grpo.algorithm=ppo",
            "grpo.critic=head",
            "grpo.vf_coef=0.5",
            "grpo.rewards=[{name: exact_match}]",
            "grpo.group_size=8",
            "grpo.prompts_per_step=16",
            "grpo.max_new_tokens=4",
            "grpo.temperature=1.0",
            "train.micro_batch_size=64",
            "train.max_steps=40",
            "train.lr=1e-4",
            "train.schedule=constant",
        ],
    )
    grpo.run(recipe, output_dir=str(root / "ppo"))
    after = _accuracy(root / "ppo" / "final", test)
    rows = [r for r in _metrics(root / "ppo") if "reward" in r]
    curve = [round(r["reward"], 2) for r in rows]
    print(f"held-out accuracy {before:.2f} -> {after:.2f}; reward curve {curve}")
    # measured: greedy held-out 0.60 -> 0.75, sampled reward 0.22 (first 10 steps) -> 0.41 (last 10).
    # A separate critic (from the SFT weights, fresh head) at lr 2e-4 collapsed to one answer (0.51);
    # at 5e-5 it reached 0.64 (README).
    assert after >= before + 0.1, (before, after, curve)
    assert {"value_loss", "policy_loss", "value", "clip_fraction"} <= set(rows[0])
    assert (root / "ppo" / "final" / "auxiliary.safetensors").is_file()  # the value head


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, tiny_dir):
    """The 1-process reference run of the 2-process comparisons (greedy, 2 PPO steps)."""
    root = tmp_path_factory.mktemp("ppo-dist")
    recipe = root / "ppo.yaml"
    recipe.write_text(
        f"model: {tiny_dir}\ndata: [{_prompts(root)}]\n"
        "train: {micro_batch_size: 8, max_steps: 2, lr: 1.0e-3, warmup_steps: 0}\n"
        "grpo: {algorithm: ppo, critic: head, rewards: [{name: 'tests.integration.test_grpo:short_answer'}],"
        " group_size: 2, prompts_per_step: 4, updates_per_batch: 2, max_new_tokens: 4, kl_coef: 0.1,"
        " temperature: 0.0, vf_coef: 0.5}\n"
    )
    run_cli("grpo", recipe, "--output-dir", root / "one")
    return recipe, root / "one"


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_match_one(one_process, strategy, tmp_path):
    """2 processes (DDP or FSDP2, gloo) x micro-batch 4 log 1 process x 8's losses over 2 PPO steps:
    advantages are whitened with the mean and variance of the whole step's response tokens, summed
    over both processes. Sampling is greedy (temperature 0) because each rank samples its half of
    the prompts with its own seed; sampled completions would differ between 1 and 2 processes for a
    reason other than whitening. (Each process whitening its own half, tried by hand, changes step
    1's gradient norm from 3.984 to 3.925.)"""
    recipe, one_dir = one_process
    run_cli(
        "grpo",
        recipe,
        "--output-dir",
        tmp_path / "two",
        "--num-processes",
        "2",
        "--set",
        "train.micro_batch_size=4",
        "--set",
        f"train.distributed={strategy}",
    )
    keys = ("loss", "policy_loss", "value_loss", "grad_norm", "reward")
    one = [[r[k] for k in keys] for r in _metrics(one_dir) if "loss" in r]
    two = [[r[k] for k in keys] for r in _metrics(tmp_path / "two") if "loss" in r]
    assert len(one) == 2 and any(abs(v[1]) > 1e-3 for v in one)  # the policy loss is not trivially 0
    for a, b in zip(one, two, strict=True):
        assert b == pytest.approx(a, abs=1e-4)
    for name in ("model.safetensors", "auxiliary.safetensors"):  # full weights, value head included
        a, b = load_file(one_dir / "final" / name), load_file(tmp_path / "two" / "final" / name)
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(b[key], a[key], atol=1e-4, rtol=1e-3)
