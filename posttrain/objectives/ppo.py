"""PPO with a learned value function, as Tulu 3's RLVR runs it: pure tensor functions.

Schulman et al. 2017, "Proximal Policy Optimization Algorithms"; GAE from Schulman et al. 2016,
"High-Dimensional Continuous Control Using Generalized Advantage Estimation"; the RLHF form with
the KL penalty in the per-token reward from Ziegler et al. 2019 and Ouyang et al. 2022, as
Lambert et al. 2024 (Tulu 3, RLVR) and open-instruct / TRL implement it.

All tensors are [B, T] aligned with the labels (position t holds the quantities of response token
t: its log-prob, and the value V(s_t) of the state before it is generated); `mask` marks the
response tokens (contiguous in each row).

    per-token reward   r_t = -beta * (log pi_old(y_t) - log ref(y_t))   (k1, Tulu 3's form)
                       plus the sequence's score on its last response token
    GAE                delta_t = r_t + gamma * V_{t+1} - V_t   (V after the last token = 0)
                       A_t = delta_t + gamma * lambda * A_{t+1};   returns R_t = A_t + V_t
    whitening          A <- (A - mean(A)) / sqrt(var(A) + 1e-8) over the batch's response tokens
    policy loss        -min(rho_t A_t, clip(rho_t, 1-eps, 1+eps) A_t)   (policy_gradient.py)
    value loss         0.5 * max((V_t - R_t)^2, (clip(V_t, V_old - c, V_old + c) - R_t)^2)
    token loss         policy loss + vf_coef * value loss  [+ beta * KL when the KL is a loss term]
"""

from __future__ import annotations

import torch

from posttrain.data.rollout_layout import rollout_forward
from posttrain.objectives.policy_gradient import (
    Aggregation,
    KlKind,
    aggregate,
    clipped_surrogate,
    kl_estimate,
    per_unit_sum,
    unit_count,
)


def kl_penalised_rewards(
    scores: torch.Tensor, logps: torch.Tensor, ref_logps: torch.Tensor | None, mask: torch.Tensor, kl_coef: float
) -> torch.Tensor:
    """[B, T] per-token rewards: -kl_coef * (logps - ref_logps) on response tokens (none when
    ref_logps is None), plus scores [B] on each row's last response token."""
    mask = mask.to(logps.dtype)
    rewards = torch.zeros_like(logps)
    if ref_logps is not None and kl_coef > 0:
        rewards = -kl_coef * (logps - ref_logps) * mask
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    last = torch.where(mask.bool(), positions, -1).max(dim=1).values
    rows = torch.nonzero(last >= 0).squeeze(-1)
    rewards[rows, last[rows]] += scores[rows].to(rewards.dtype)
    return rewards


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns) [B, T] by generalised advantage estimation over each row's response
    tokens; zero outside the mask. The value after the last response token is 0 (episode end)."""
    mask = mask.to(values.dtype)
    advantages = torch.zeros_like(values)
    next_value = torch.zeros_like(values[:, 0])
    next_advantage = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        advantage = (delta + gamma * lam * next_advantage) * mask[:, t]
        advantages[:, t] = advantage
        next_value, next_advantage = values[:, t] * mask[:, t], advantage
    return advantages, (advantages + values) * mask


def whiten(values: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8, reduce_sum=None) -> torch.Tensor:
    """Masked whitening (zero mean, unit variance over the masked entries; unbiased variance, as
    TRL's masked_whiten); zero outside the mask. reduce_sum (a tensor -> its sum over processes)
    makes the statistics those of every process's masked entries together: the mean from the
    summed (sum, count), then the variance from the summed squared deviations from that mean, the
    same two passes (and n - 1 divisor) one process makes over the whole batch."""
    reduce_sum = reduce_sum or (lambda x: x)
    mask = mask.to(values.dtype)
    total, n = reduce_sum(torch.stack([(values * mask).sum(), mask.sum()]))
    mean = total / n
    var = reduce_sum((((values - mean) ** 2) * mask).sum()) / (n - 1).clamp(min=1)
    return (values - mean) * torch.rsqrt(var + eps) * mask


def clipped_value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, clip: float
) -> torch.Tensor:
    """Per-token 0.5 * max((V - R)^2, (clip(V, V_old - c, V_old + c) - R)^2): the value may not
    gain by moving more than c from the value the rollout was scored with."""
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    return 0.5 * torch.maximum((values - returns) ** 2, (clipped - returns) ** 2)


class PPOObjective:
    """The clipped policy loss on per-token advantages plus vf_coef x the clipped value loss, for
    the training loop. The policy module returns (token log-probs, values) [B, T]; a micro-batch
    holds input_ids, labels, token_advantages, returns, old_values, old_logps [B, T] (and
    ref_logps when the KL is a loss term) and `stat/<name>` [B] per-completion statistics."""

    def __init__(
        self,
        *,
        eps_low: float,
        eps_high: float,
        aggregation: Aggregation,
        vf_coef: float,
        value_clip: float,
        kl_coef: float = 0.0,
        kl_kind: KlKind = "k3",
        ignore_index: int = -100,
        max_length: int | None = None,
    ):
        self.eps_low, self.eps_high, self.aggregation = eps_low, eps_high, aggregation
        self.max_length = max_length  # dr_grpo's constant divisor (grpo.max_new_tokens)
        self.vf_coef, self.value_clip = vf_coef, value_clip
        self.kl_coef, self.kl_kind, self.ignore_index = kl_coef, kl_kind, ignore_index

    def weight(self, mb: dict[str, torch.Tensor]) -> int:
        return unit_count(mb["labels"] != self.ignore_index, self.aggregation)

    def loss(self, policy, mb: dict[str, torch.Tensor]):
        mask = (mb["labels"] != self.ignore_index).to(torch.float32)
        logps, values = rollout_forward(policy, mb)  # one row per completion, or the shared-prefix layout
        policy_loss, clipped = clipped_surrogate(
            logps, mb["old_logps"], mb["token_advantages"], self.eps_low, self.eps_high
        )
        value_loss = clipped_value_loss(values, mb["old_values"], mb["returns"], self.value_clip)
        token_loss = policy_loss + self.vf_coef * value_loss
        stats = {
            "clip_fraction": aggregate(clipped.float(), mask, self.aggregation, self.max_length).detach(),
            "value_loss": aggregate(value_loss.detach(), mask, self.aggregation, self.max_length),
            "policy_loss": aggregate(policy_loss.detach(), mask, self.aggregation, self.max_length),
            "value": aggregate(values.detach(), mask, self.aggregation, self.max_length),
            "entropy": aggregate(-logps.detach(), mask, self.aggregation, self.max_length),
        }
        if self.kl_coef > 0 and "ref_logps" in mb:
            kl = kl_estimate(logps, mb["ref_logps"], self.kl_kind)
            token_loss = token_loss + self.kl_coef * kl
            stats["kl"] = aggregate(kl.detach(), mask, self.aggregation, self.max_length)
        lengths = mask.sum(-1)
        for key, value in mb.items():
            if key.startswith("stat/"):
                stats[key[5:]] = per_unit_sum(value.float(), lengths, self.aggregation)
        return aggregate(token_loss, mask, self.aggregation, self.max_length), stats
