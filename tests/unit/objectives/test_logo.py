"""LOGO against hand-computed values and gradients.

beta = 1, gamma = 0.5, lambda (logo_sft_weight) = 0.1, two prompts:
  prompt 0: chosen logp -2 over 2 tokens (avg -1); rejected logp -6 over 3 (avg -2) and a second
            rejected logp -4 over 1 (avg -4), M = 2. z = -1 - (-2 + -4)/2 - 0.5 = 1.5
            loss = log(1 + e^-1.5) + 0.1 * 1 = 0.301413...
  prompt 1: chosen -4 over 2 (avg -2); rejected -2 over 2 (avg -1), M = 1. z = -2 + 1 - 0.5 = -1.5
            loss = log(1 + e^1.5) + 0.1 * 2 = 1.901413...
Gradients, with d(-log sigma(z))/dz = -sigma(-z):
  d/d chosen logp   = -sigma(-z) * beta/|y_w| - lambda/|y_w|
  d/d rejected_j    = +sigma(-z) * beta/(M |y_l^j|)
"""

import math

import pytest
import torch

from posttrain.objectives import preference as po
from posttrain.objectives.preference import PairLogps, PreferenceConfig


def sig(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def t(*values: float, grad: bool = True) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64, requires_grad=grad)


def make_batch() -> PairLogps:
    return PairLogps(
        policy_chosen_logps=t(-2, -4),
        policy_rejected_logps=t(-6, -2),
        chosen_lengths=t(2, 2, grad=False),
        rejected_lengths=t(3, 2, grad=False),
        extra_rejected_logps=t(-4),
        extra_rejected_lengths=t(1, grad=False),
        extra_rejected_pair=torch.tensor([0]),
    )


def test_logo_values_and_gradients_by_hand():
    batch = make_batch()
    out = po.logo(batch, PreferenceConfig(beta=1.0, gamma=0.5, logo_sft_weight=0.1))
    expected = [math.log1p(math.exp(-1.5)) + 0.1, math.log1p(math.exp(1.5)) + 0.2]
    assert out.losses.tolist() == pytest.approx(expected, rel=1e-12)
    assert out.chosen_rewards.tolist() == pytest.approx([-1.0, -2.0])
    assert out.rejected_rewards.tolist() == pytest.approx([-3.0, -1.0])  # mean over the M rejected
    assert out.extra["num_rejected"].tolist() == [2.0, 1.0]
    out.losses.sum().backward()
    s0, s1 = sig(-1.5), sig(1.5)
    assert batch.policy_chosen_logps.grad.tolist() == pytest.approx([-s0 / 2 - 0.05, -s1 / 2 - 0.05])
    assert batch.policy_rejected_logps.grad.tolist() == pytest.approx([s0 / 6, s1 / 2])
    assert batch.extra_rejected_logps.grad.tolist() == pytest.approx([s0 / 2])


def test_logo_with_one_rejected_and_no_sft_term_is_simpo():
    fields = dict(
        policy_chosen_logps=t(-1, -2),
        policy_rejected_logps=t(-3, -1),
        chosen_lengths=t(2, 4, grad=False),
        rejected_lengths=t(3, 2, grad=False),
    )
    cfg = PreferenceConfig(beta=2.0, gamma=0.3, logo_sft_weight=0.0)
    logo = po.logo(PairLogps(**fields), cfg).losses
    simpo = po.simpo(PairLogps(**fields), cfg).losses
    assert logo.tolist() == pytest.approx(simpo.tolist(), rel=1e-12)


def test_more_rejected_is_optional_per_prompt():
    """An empty extra block (no prompt has a second rejected response) is the M = 1 case."""
    fields = dict(
        policy_chosen_logps=t(-2),
        policy_rejected_logps=t(-2),
        chosen_lengths=t(2, grad=False),
        rejected_lengths=t(2, grad=False),
    )
    empty = dict(
        extra_rejected_logps=t(),
        extra_rejected_lengths=t(grad=False),
        extra_rejected_pair=torch.zeros(0, dtype=torch.long),
    )
    cfg = PreferenceConfig(beta=1.0, logo_sft_weight=0.5)
    plain = po.logo(PairLogps(**fields), cfg).losses
    assert po.logo(PairLogps(**fields, **empty), cfg).losses.tolist() == pytest.approx(plain.tolist())
    assert plain.tolist() == pytest.approx([math.log(2) + 0.5])
