"""Issue 30 item 11: non-finite rewards (nan, inf) in GRPO/RLOO/PPO rollouts are counted and warned
about, never turned into nan advantages; a batch whose every reward is non-finite stops the run."""

import logging
import math

import pytest
import torch

from posttrain.errors import UserError
from posttrain.objectives.policy_gradient import group_advantages

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize("kind", ["group_std", "rloo", "none"])
def test_non_finite_rewards_get_zero_advantage_and_leave_the_others_as_without_them(kind, caplog):
    from posttrain.stages.grpo import screen_rewards

    totals = torch.tensor([1.0, NAN, 0.0, 1.0, INF, 2.0, -INF, 0.0])  # 2 groups of 4
    with caplog.at_level(logging.WARNING):
        clean, bad = screen_rewards(totals, group_size=4, batch=3)
    assert bad.tolist() == [False, True, False, False, True, False, True, False]
    assert torch.isfinite(clean).all()
    advantages = group_advantages(clean.view(-1, 4), kind).view(-1)
    assert advantages[bad].abs().max() < 1e-6 and torch.isfinite(advantages).all()
    # the finite rewards of the first group: 1, 0, 1 with the bad one at their mean
    assert clean[1].item() == pytest.approx(2 / 3) and clean[4].item() == clean[6].item() == 1.0
    assert any("batch 3: 3 of 8 rewards are not finite" in r.getMessage() for r in caplog.records)


def test_a_batch_of_only_non_finite_rewards_stops_with_one_line():
    from posttrain.stages.grpo import screen_rewards

    with pytest.raises(UserError, match=r"rollout batch 5: every reward is nan or inf \(4 of 4\)") as err:
        screen_rewards(torch.tensor([NAN, NAN, INF, NAN]), group_size=2, batch=5)
    assert len(str(err.value).splitlines()) == 1


def test_finite_rewards_pass_through_unchanged(caplog):
    from posttrain.stages.grpo import screen_rewards

    totals = torch.tensor([0.5, 1.0, 0.0, 2.0])
    with caplog.at_level(logging.WARNING):
        clean, bad = screen_rewards(totals, group_size=2, batch=0)
    assert torch.equal(clean, totals) and not bad.any() and not caplog.records
