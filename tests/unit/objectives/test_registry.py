"""The loss registry: every name present, flags that match what each function reads, helpful errors."""

import dataclasses

import pytest
import torch

from posttrain.errors import UserError
from posttrain.objectives import registry
from posttrain.objectives.preference import (
    PairLogps,
    PreferenceConfig,
    PreferenceOutput,
    UnpairedLogps,
)
from posttrain.objectives.reward import AttributeScores, RewardOutput, ScorePairs

PREFERENCE_NAMES = {
    "sigmoid",
    "robust",
    "conservative",
    "hinge",
    "ipo",
    "dpo_norm",
    "simpo",
    "cpo",
    "orpo",
    "selm",
    "rebel",
    "kto",
    "logo",
}
REWARD_NAMES = {"bradley_terry", "bt_margin", "scaled_bt", "regression"}


def vec(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def test_every_name_present():
    assert set(registry.PREFERENCE_LOSSES) == PREFERENCE_NAMES
    assert set(registry.REWARD_LOSSES) == REWARD_NAMES
    assert all(name == spec.name for name, spec in registry.PREFERENCE_LOSSES.items())


def test_hyperparameters_are_config_fields():
    config_fields = {f.name for f in dataclasses.fields(PreferenceConfig)}
    for spec in registry.PREFERENCE_LOSSES.values():
        assert set(spec.hyperparameters) <= config_fields, spec.name


def batch_for(spec: registry.LossSpec) -> PairLogps | UnpairedLogps:
    """Only the inputs the spec's flags ask for: a flag that under-declares fails with UserError."""
    if not spec.paired:
        return UnpairedLogps(
            policy_logps=vec(-1, -2),
            ref_logps=vec(-2, -1),
            desirable=torch.tensor([True, False]),
            kl_reference_point=torch.tensor(0.1),
        )
    fields = dict(policy_chosen_logps=vec(-1, -2), policy_rejected_logps=vec(-3, -1))
    if spec.needs_reference:
        fields.update(ref_chosen_logps=vec(-2, -2), ref_rejected_logps=vec(-2, -2))
    if spec.length_normalised:
        fields.update(chosen_lengths=vec(2, 4), rejected_lengths=vec(3, 2))
    if spec.needs_reference_sample:
        fields.update(policy_ref_sample_logps=vec(-4, -2), ref_ref_sample_logps=vec(-3, -3))
    if spec.needs_rewards:
        fields.update(
            old_chosen_logps=vec(-1, -2),
            old_rejected_logps=vec(-3, -1),
            chosen_scores=vec(1, 0),
            rejected_scores=vec(0, 1),
        )
    return PairLogps(**fields)


@pytest.mark.parametrize("name", sorted(PREFERENCE_NAMES))
def test_flags_declare_every_input(name):
    spec = registry.get_preference_loss(name)
    out = spec.fn(batch_for(spec), PreferenceConfig())
    assert isinstance(out, PreferenceOutput) and out.losses.shape == (2,)
    assert out.chosen_rewards.shape == out.rejected_rewards.shape == (2,)


def test_reference_free_and_special_inputs():
    specs = registry.PREFERENCE_LOSSES
    assert {n for n, s in specs.items() if not s.needs_reference} == {"simpo", "cpo", "orpo", "rebel", "logo"}
    assert [n for n, s in specs.items() if not s.paired] == ["kto"]
    assert [n for n, s in specs.items() if s.needs_reference_sample] == ["selm"]
    assert [n for n, s in specs.items() if s.needs_rewards] == ["rebel"]


@pytest.mark.parametrize("name", sorted(REWARD_NAMES))
def test_reward_specs_run(name):
    spec = registry.get_reward_loss(name)
    if spec.pairwise:
        batch = ScorePairs(
            chosen_scores=vec(1, 0),
            rejected_scores=vec(0, 1),
            margins=vec(0.5, 0.5) if spec.needs_margins else None,
            strengths=vec(1, 3) if spec.needs_strengths else None,
        )
    else:
        batch = AttributeScores(predicted=torch.zeros(2, 5), target=torch.ones(2, 5))
    out = spec.fn(batch)
    assert isinstance(out, RewardOutput) and out.losses.shape == (2,)


def test_unknown_name_suggests_nearest():
    with pytest.raises(UserError, match="did you mean 'sigmoid'"):
        registry.get_preference_loss("sigmod")
    with pytest.raises(UserError, match="did you mean 'bradley_terry'"):
        registry.get_reward_loss("bradly_terry")


def test_loss_table_lists_every_objective():
    table = registry.loss_table_markdown()
    assert table.startswith("| objective | paper | reference needed | key hyperparameters |")
    for name in PREFERENCE_NAMES | REWARD_NAMES:
        assert f"| `{name}`" in table
    assert len(table.strip().splitlines()) == 2 + len(PREFERENCE_NAMES) + len(REWARD_NAMES)
