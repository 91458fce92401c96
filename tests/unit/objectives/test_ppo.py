"""PPO's pieces against hand-computed values and gradients.

GAE, gamma = 0.9, lambda = 0.8 (gamma*lambda = 0.72), row 0: a prompt token then 3 response
tokens, V = [9, 1, 2, 3], r = [0, 0, 0.5, 1]:
    t=3: delta = 1 - 3 = -2                    A3 = -2
    t=2: delta = 0.5 + 0.9*3 - 2 = 1.2         A2 = 1.2 + 0.72*(-2) = -0.24
    t=1: delta = 0 + 0.9*2 - 1 = 0.8           A1 = 0.8 + 0.72*(-0.24) = 0.6272
    returns = A + V = [0, 1.6272, 1.76, 1]
    dA1/dV = [0, -1, gamma - gamma*lambda = 0.18, gamma*lambda*0.18 = 0.1296]
row 1: 2 response tokens then padding, V = [0.5, 0.5, 7, 7], r = [0, 2, 0, 0]:
    t=1: delta = 2 - 0.5 = 1.5 (the padding's value is not a next state)    A1 = 1.5
    t=0: delta = 0.9*0.5 - 0.5 = -0.05          A0 = -0.05 + 0.72*1.5 = 1.03
Clipped value loss, c = 0.5, V_old = 1:
    V=2,   R=3:  max((2-3)^2, (1.5-3)^2) = 2.25 -> 1.125, gradient 0 (the clipped branch wins)
    V=0,   R=0.5: max(0.25, (0.5-0.5)^2) = 0.25 -> 0.125, gradient V - R = -0.5
    V=1.2, R=-1: both branches (2.2)^2 = 4.84 -> 2.42, gradient 2.2
"""

import pytest
import torch

from posttrain.objectives.ppo import (
    PPOObjective,
    clipped_value_loss,
    gae,
    kl_penalised_rewards,
    whiten,
)


def flat(x):
    return torch.as_tensor(x, dtype=torch.float64).flatten().tolist()


def t(rows, grad=False):
    return torch.tensor(rows, dtype=torch.float64, requires_grad=grad)


def test_gae_by_hand():
    values = t([[9, 1, 2, 3], [0.5, 0.5, 7, 7]], grad=True)
    rewards = t([[0, 0, 0.5, 1], [0, 2, 0, 0]])
    mask = torch.tensor([[0, 1, 1, 1], [1, 1, 0, 0]])
    advantages, returns = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    assert flat(advantages.detach()) == pytest.approx(flat([[0, 0.6272, -0.24, -2], [1.03, 1.5, 0, 0]]))
    assert flat(returns.detach()) == pytest.approx(flat([[0, 1.6272, 1.76, 1], [1.53, 2.0, 0, 0]]))
    advantages[0, 1].backward()
    assert values.grad[0].tolist() == pytest.approx([0, -1, 0.18, 0.1296])
    assert values.grad[1].tolist() == [0, 0, 0, 0]


def test_gae_with_gamma_and_lambda_one_is_reward_to_go_minus_value():
    rewards, values = t([[1, 2, 3]]), t([[0.5, 1, 4]])
    advantages, returns = gae(rewards, values, torch.ones(1, 3), gamma=1.0, lam=1.0)
    assert flat(advantages.detach()) == pytest.approx(flat([[6 - 0.5, 5 - 1, 3 - 4]]))
    assert flat(returns.detach()) == pytest.approx(flat([[6, 5, 3]]))


def test_clipped_value_loss_by_hand():
    values = t([2.0, 0.0, 1.2], grad=True)
    loss = clipped_value_loss(values, t([1.0, 1.0, 1.0]), t([3.0, 0.5, -1.0]), clip=0.5)
    assert loss.tolist() == pytest.approx([1.125, 0.125, 2.42])
    loss.sum().backward()
    assert values.grad.tolist() == pytest.approx([0.0, -0.5, 2.2])


def test_whiten_and_kl_penalised_rewards():
    assert whiten(t([1, 2, 3, 100]), torch.tensor([1, 1, 1, 0])).tolist() == pytest.approx([-1, 0, 1, 0], abs=1e-6)
    rewards = kl_penalised_rewards(
        t([1.0, 2.0]),
        t([[0, -1, -2, 0], [-0.5, -0.5, 0, 0]]),
        t([[0, -1.5, -1, 0], [-1, -0.25, 0, 0]]),
        torch.tensor([[0, 1, 1, 0], [1, 1, 0, 0]]),
        kl_coef=0.1,
    )
    assert flat(rewards.detach()) == pytest.approx(flat([[0, -0.05, 1.1, 0], [-0.05, 2.025, 0, 0]]))
    no_kl = kl_penalised_rewards(t([3.0]), t([[-1, -1]]), None, torch.tensor([[1, 0]]), kl_coef=0.1)
    assert no_kl.tolist() == [[3.0, 0.0]]


def test_whiten_uses_every_process_statistics():
    """This process holds [1, 2, 3] (and a masked 100); the other [6]. Together: mean 3, unbiased
    variance (4 + 1 + 0 + 9) / 3; the other's contributions, (sum 6, count 1) then (6 - 3)^2 = 9,
    are what reduce_sum adds to this process's."""
    others = iter([t([6.0, 1.0]), t(9.0)])
    white = whiten(t([1, 2, 3, 100]), torch.tensor([1, 1, 1, 0]), reduce_sum=lambda x: x + next(others))
    std = (14 / 3) ** 0.5
    assert white.tolist() == pytest.approx([-2 / std, -1 / std, 0, 0], abs=1e-6)


def test_objective_adds_policy_and_weighted_value_losses():
    """Ratio 1 (old = current log-probs): the policy loss is -A per token; sequence_mean sums each
    row's token mean. Row: 2 response tokens, A = [1, -2], V = [2, 0], V_old = 1, R = [3, 0.5]."""
    logps, values = t([[0.0, -1.0, -2.0]], grad=True), t([[0.0, 2.0, 0.0]], grad=True)
    mb = {
        "input_ids": torch.zeros(1, 3, dtype=torch.long),
        "labels": torch.tensor([[-100, 5, 6]]),
        "token_advantages": t([[0, 1, -2]]),
        "old_logps": t([[0.0, -1.0, -2.0]]),
        "old_values": t([[0, 1, 1]]),
        "returns": t([[0, 3, 0.5]]),
        "stat/reward": t([1.0]),
    }
    objective = PPOObjective(eps_low=0.2, eps_high=0.2, aggregation="sequence_mean", vf_coef=0.1, value_clip=0.5)
    loss, stats = objective.loss(lambda ids, labels: (logps, values), mb)
    assert loss.item() == pytest.approx(((-1 + 2) + 0.1 * (1.125 + 0.125)) / 2)
    assert stats["value_loss"].item() == pytest.approx((1.125 + 0.125) / 2) and stats["reward"].item() == 1.0
    loss.backward()
    assert flat(logps.grad.detach()) == pytest.approx(flat([[0, -0.5, 1.0]]))  # -A / |y|
    assert flat(values.grad.detach()) == pytest.approx(flat([[0, 0.0, 0.1 * -0.5 / 2]]))
