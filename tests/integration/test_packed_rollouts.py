"""`posttrain grpo` (GRPO and PPO) with data.pack: each group's completions scored in one row after
their prompt (data/rollout_layout.py) gives the same training run as one row per completion:
losses, KL, values and every logged statistic to 1e-5."""

import logging

import pytest

from posttrain.config.recipe import load_recipe
from posttrain.data.rollout_layout import group_layout
from posttrain.stages import grpo
from tests.integration.test_grpo import _metrics
from tests.integration.test_ppo import _prompts
from tests.integration.test_shared_prefix_dpo import _assert_same_runs


def _run(tmp_path, tiny_dir, pack, extra):
    out = tmp_path / f"pack-{pack}"
    recipe = load_recipe(
        None,
        [
            f"model={tiny_dir}",
            f"data=[{_prompts(tmp_path)}]",
            f"data.pack={str(pack).lower()}",
            "grpo.rewards=[{name: 'tests.integration.test_grpo:short_answer'}]",
            "grpo.group_size=4",
            "grpo.prompts_per_step=3",
            "grpo.max_new_tokens=6",
            "grpo.temperature=1.0",
            "grpo.kl_coef=0.1",
            # 12 completions in micro-batches of 5: groups cut across micro-batches
            "train.micro_batch_size=5",
            "train.max_steps=4",
            "train.lr=1e-3",
            *extra,
        ],
    )
    grpo.run(recipe, output_dir=str(out))
    return [r for r in _metrics(out) if "loss" in r]


@pytest.mark.parametrize(
    "extra",
    [
        ("grpo.updates_per_batch=2",),  # old-policy log-probs too
        ("grpo.algorithm=ppo", "grpo.critic=separate", "grpo.vf_coef=0.5"),
        ("grpo.algorithm=ppo", "grpo.critic=head", "grpo.kl_in_reward=true"),
    ],
    ids=["grpo", "ppo-critic", "ppo-head"],
)
def test_shared_prompt_rows_give_the_same_run(tmp_path, tiny_dir, extra, caplog, monkeypatch):
    caplog.set_level(logging.WARNING)
    laid_out = []
    monkeypatch.setattr(grpo, "group_layout", lambda *a: laid_out.append(a) or group_layout(*a))
    rows = _run(tmp_path, tiny_dir, False, extra)
    assert len(rows) == 4 and any(r.get("kl", 0) != 0 for r in rows) and not laid_out
    _assert_same_runs(rows, _run(tmp_path, tiny_dir, True, extra))
    batches = 2 if "grpo.updates_per_batch=2" in extra else 4
    assert len(laid_out) == 3 * batches  # every micro-batch of every batch of samples, in shared rows
    assert not any("cannot take" in r.getMessage() for r in caplog.records)
