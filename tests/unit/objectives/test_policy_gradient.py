"""Policy-gradient terms against hand-computed values, and a bandit whose optimum is known.

Group [1, 0, 0, 1]: mean 0.5, centred [.5, -.5, -.5, .5], unbiased std sqrt(4 * .25 / 3) = 1/sqrt(3),
so A = +-0.5 * sqrt(3) = +-0.8660 (eps 0). RLOO on [1, 0, 0]: A_0 = 1 - (0+0)/2 = 1,
A_1 = A_2 = 0 - (1+0)/2 = -0.5.
Clipping with eps 0.2: rho 1.5, A=+1 -> min(1.5, 1.2) = 1.2 (clipped); A=-1 -> min(-1.5, -1.2) = -1.5
(not clipped); rho 0.5, A=+1 -> min(.5, .8) = .5 (not clipped); A=-1 -> min(-.5, -.8) = -.8 (clipped).
KL with pi = 0.5, ref = 0.25: k1 = log 2 = 0.6931; k3 = 0.5 - log 0.5 - 1 = 0.1931.
"""

import math

import pytest
import torch

from posttrain.errors import UserError
from posttrain.objectives import policy_gradient as pg


def test_group_std_advantages():
    adv = pg.group_advantages(torch.tensor([[1.0, 0, 0, 1], [2.0, 2, 2, 2]]), "group_std", eps=0.0)
    s = 0.5 * math.sqrt(3)
    assert torch.allclose(adv[0], torch.tensor([s, -s, -s, s]), atol=1e-6)
    assert torch.equal(adv[1], torch.zeros(4))  # a group with one reward teaches nothing


def test_unnormalised_advantages():
    adv = pg.group_advantages(torch.tensor([[3.0, 1.0]]), "none")
    assert torch.allclose(adv, torch.tensor([[1.0, -1.0]]))


def test_rloo_leave_one_out_baseline():
    adv = pg.group_advantages(torch.tensor([[1.0, 0, 0]]), "rloo")
    assert torch.allclose(adv, torch.tensor([[1.0, -0.5, -0.5]]))
    with pytest.raises(UserError):
        pg.rloo_advantages(torch.tensor([[1.0]]))


def test_clipped_surrogate():
    old = torch.zeros(1, 4)
    logps = torch.log(torch.tensor([[1.5, 1.5, 0.5, 0.5]]))
    loss, clipped = pg.clipped_surrogate(logps, old, torch.tensor([1.0]), 0.2, 0.2)
    assert torch.allclose(loss[0, :1], torch.tensor([-1.2]))
    loss_neg, clipped_neg = pg.clipped_surrogate(logps, old, torch.tensor([-1.0]), 0.2, 0.2)
    assert torch.allclose(loss_neg[0, 1:2], torch.tensor([1.5]))
    assert torch.allclose(loss[0, 2:3], torch.tensor([-0.5]))
    assert torch.allclose(loss_neg[0, 3:], torch.tensor([0.8]))
    assert clipped[0].tolist() == [True, True, False, False]
    assert clipped_neg[0].tolist() == [False, False, True, True]


def test_kl_estimators():
    logps, ref = torch.log(torch.tensor([0.5])), torch.log(torch.tensor([0.25]))
    assert torch.allclose(pg.kl_estimate(logps, ref, "k1"), torch.tensor([math.log(2)]))
    assert torch.allclose(pg.kl_estimate(logps, ref, "k3"), torch.tensor([0.5 + math.log(2) - 1]))
    assert float(pg.kl_estimate(logps, logps, "k3")) == 0.0


def test_aggregation_modes():
    values = torch.tensor([[1.0, 2, 3], [4, 9, 9]])
    mask = torch.tensor([[1.0, 1, 1], [1, 0, 0]])
    assert float(pg.aggregate(values, mask, "token")) == 10.0
    assert float(pg.aggregate(values, mask, "sequence_mean")) == 6.0  # 2 + 4
    assert pg.unit_count(mask, "token") == 4 and pg.unit_count(mask, "sequence_mean") == 2


def test_the_three_aggregations_by_hand():
    """Token losses [[1, 2, 3], [4, -, -]], N = 2 completions, L = max length 4. The step loss is
    the unit sum divided by the unit count (what the loop does):
    GRPO (sequence_mean): (6/3 + 4/1) / 2 = 3;  DAPO (token): 10 / 4 tokens = 2.5;
    Dr. GRPO: 10 / (2 * 4) = 1.25, and every token's gradient is the constant 1/(N*L)."""
    values = torch.tensor([[1.0, 2, 3], [4, 9, 9]], requires_grad=True)
    mask = torch.tensor([[1.0, 1, 1], [1, 0, 0]])

    def step_loss(mode):
        return pg.aggregate(values, mask, mode, max_length=4) / pg.unit_count(mask, mode)

    assert [float(step_loss(m).detach()) for m in ("sequence_mean", "token", "dr_grpo")] == [3.0, 2.5, 1.25]
    (grad,) = torch.autograd.grad(step_loss("dr_grpo"), values)
    assert grad.tolist() == [[0.125, 0.125, 0.125], [0.125, 0, 0]]
    (grad,) = torch.autograd.grad(step_loss("sequence_mean"), values)  # short completions weigh more
    assert torch.allclose(grad, torch.tensor([[1 / 6, 1 / 6, 1 / 6], [0.5, 0, 0]]))
    with pytest.raises(UserError, match="maximum completion length"):
        pg.aggregate(values, mask, "dr_grpo")


def test_dr_grpo_objective_divides_by_max_new_tokens():
    """Through the loop's objective: unit = a completion, loss = sum of token losses / L; the
    logged statistics stay per-completion token means."""
    objective = pg.PolicyGradientObjective(
        eps_low=0.2, eps_high=0.2, aggregation="dr_grpo", kl_coef=0.0, kl_kind="k3", max_length=8
    )
    logps = torch.log(torch.tensor([[0.5, 0.25, 0.5], [0.5, 0.5, 0.5]]))
    labels = torch.tensor([[5, 6, 7], [5, -100, -100]])
    mb = {"input_ids": labels.clamp(min=0), "labels": labels, "advantages": torch.tensor([1.0, -2.0])}
    loss, stats = objective.loss(lambda ids, labels: logps, mb)
    # rho = 1: token loss -A; sums -3 (three tokens, A = 1) and +2 (one token, A = -2)
    assert objective.weight(mb) == 2 and math.isclose(float(loss), (-3 + 2) / 8)
    entropy = [-(math.log(0.5) * 2 + math.log(0.25)) / 3, -math.log(0.5)]
    assert math.isclose(float(stats["entropy"]), sum(entropy), rel_tol=1e-6)


def test_kl_penalty_enters_loss_and_stats():
    logps = torch.log(torch.tensor([[0.5]]))
    loss, stats = pg.policy_gradient_loss(
        logps,
        logps,
        torch.tensor([0.0]),
        torch.ones(1, 1),
        eps_low=0.2,
        eps_high=0.2,
        aggregation="token",
        kl_coef=0.5,
        ref_logps=torch.log(torch.tensor([[0.25]])),
        kl_kind="k1",
    )
    assert torch.allclose(loss, torch.tensor(0.5 * math.log(2)))
    assert torch.allclose(stats["kl"], torch.tensor(math.log(2)))
    assert float(stats["clip_fraction"]) == 0.0


def test_bandit_learns_rewarded_token():
    """Two actions, logits as parameters, reward 1 for action 0: a few GRPO steps raise p(0)."""
    logits = torch.zeros(2, requires_grad=True)
    optimizer = torch.optim.SGD([logits], lr=1.0)
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        probs = torch.softmax(logits.detach(), -1)
        actions = torch.multinomial(probs, 8, replacement=True, generator=gen)
        rewards = (actions == 0).float().view(1, -1)
        adv = pg.group_advantages(rewards, "group_std").view(-1)
        logps = torch.log_softmax(logits, -1)[actions].view(-1, 1)
        loss, _ = pg.policy_gradient_loss(
            logps, logps.detach(), adv, torch.ones(8, 1), eps_low=0.2, eps_high=0.2, aggregation="sequence_mean"
        )
        optimizer.zero_grad()
        (loss / 8).backward()
        optimizer.step()
    assert float(torch.softmax(logits.detach(), -1)[0]) > 0.9
