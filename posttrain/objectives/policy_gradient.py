"""Policy-gradient objectives for RL with verifiable rewards (GRPO, RLOO): pure tensor functions.

For a prompt x, G completions y_1..y_G are sampled from the old policy and scored r_1..r_G.

Advantages (one per completion, shared by its tokens):
    GRPO, group std:  A_i = (r_i - mean(r)) / (std(r) + eps)      (Shao et al. 2024, DeepSeekMath)
    GRPO, none:       A_i =  r_i - mean(r)                         (Dr. GRPO drops the std: Liu et al. 2025)
    RLOO:             A_i =  r_i - mean_{j != i} r_j = G/(G-1) * (r_i - mean(r))   (Ahmadian et al. 2024)
std is the unbiased sample std (torch's default), as DeepSeekMath's implementation and TRL use.

Per token t of completion i, with rho = pi(y_t|.) / pi_old(y_t|.):
    surrogate  l_t = -min(rho*A_i, clip(rho, 1-eps_low, 1+eps_high)*A_i)
    KL         k1 = log(pi/ref)           (unbiased for KL(pi||ref), can be negative)
               k3 = ref/pi - log(ref/pi) - 1    (Schulman's estimator: unbiased, always >= 0)
    token loss l_t + beta * k_t
The gradient of k1's value is zero in expectation; it is used as a loss here like k3 (its
gradient grad(log pi) pushes pi's mass of sampled tokens down toward ref), which is what GRPO
implementations that offer k1 do.

Aggregation (the loss unit the training loop divides by; N completions in the step, L = the
maximum completion length, grpo.max_new_tokens):
    sequence_mean: sum_i (1/|y_i|) sum_t l_it, unit = a completion: loss (1/N) sum_i (1/|y_i|)
                   sum_t l_it (GRPO, Shao et al. 2024: the mean over each sequence's tokens, then
                   over sequences)
    token:         sum_i sum_t l_it, unit = a token: loss sum_i sum_t l_it / sum_i |y_i| (DAPO, Yu
                   et al. 2025, "token-level policy gradient loss": every token of the step weighs
                   the same, so long completions are not down-weighted per token)
    dr_grpo:       sum_i (1/L) sum_t l_it, unit = a completion: loss sum_i sum_t l_it / (N * L)
                   (Dr. GRPO, Liu et al. 2025, "Understanding R1-Zero-Like Training": a constant
                   divisor, so neither a completion's length nor the step's token count biases the
                   gradient; TRL's loss_type "dr_grpo")
Logged statistics (kl, clip_fraction, entropy) are per-completion token means under dr_grpo, as
under sequence_mean: divided by L they would not read as means.
"""

from __future__ import annotations

from typing import Literal

import torch

from posttrain.data.rollout_layout import rollout_forward
from posttrain.errors import UserError

AdvantageKind = Literal["group_std", "none", "rloo"]
KlKind = Literal["k1", "k3"]
Aggregation = Literal["sequence_mean", "token", "dr_grpo"]


def group_advantages(rewards: torch.Tensor, kind: AdvantageKind = "group_std", eps: float = 1e-4) -> torch.Tensor:
    """rewards [P, G] (P prompts, G completions each) -> advantages [P, G]; see the module doc."""
    if rewards.dim() != 2:
        raise UserError(f"rewards must be [prompts, group_size], got shape {tuple(rewards.shape)}")
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if kind == "none":
        return centred
    if kind == "group_std":
        if rewards.shape[1] < 2:
            return torch.zeros_like(rewards)
        std = rewards.std(dim=1, keepdim=True)
        return torch.where(std > 0, centred / (std + eps), torch.zeros_like(centred))
    if kind == "rloo":
        return rloo_advantages(rewards)
    raise UserError(f"unknown advantage kind {kind!r}; choose group_std, none or rloo")


def rloo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """A_i = r_i - (sum_j r_j - r_i) / (G - 1): each completion's baseline is its G-1 siblings' mean."""
    group = rewards.shape[1]
    if group < 2:
        raise UserError("RLOO needs at least 2 completions per prompt (grpo.group_size >= 2)")
    others = (rewards.sum(dim=1, keepdim=True) - rewards) / (group - 1)
    return rewards - others


def clipped_surrogate(
    logps: torch.Tensor, old_logps: torch.Tensor, advantages: torch.Tensor, eps_low: float, eps_high: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token (loss -min(rho*A, clip(rho)*A), clipped?) for logps/old_logps [B, T] and A [B]
    (one advantage per completion) or [B, T] (one per token: PPO with GAE).
    `clipped` marks the tokens where the clipped branch is the minimum (its gradient is zero)."""
    ratio = torch.exp(logps - old_logps)
    adv = advantages.unsqueeze(-1) if advantages.dim() == 1 else advantages
    unclipped = ratio * adv
    clipped = ratio.clamp(1 - eps_low, 1 + eps_high) * adv
    return -torch.minimum(unclipped, clipped), clipped < unclipped


def kl_estimate(logps: torch.Tensor, ref_logps: torch.Tensor, kind: KlKind = "k3") -> torch.Tensor:
    """Per-token estimate of KL(pi || ref) from samples of pi: k1 = log(pi/ref),
    k3 = ref/pi - log(ref/pi) - 1."""
    log_ratio = ref_logps - logps
    if kind == "k1":
        return -log_ratio
    if kind == "k3":
        return torch.exp(log_ratio) - log_ratio - 1
    raise UserError(f"unknown KL estimator {kind!r}; choose k1 or k3")


def aggregate(
    token_values: torch.Tensor, mask: torch.Tensor, mode: Aggregation, max_length: int | None = None
) -> torch.Tensor:
    """The sum over loss units of [B, T] values on mask: per-sequence token means summed over
    sequences (sequence_mean), the plain sum over tokens (token), or per-sequence token sums
    divided by the constant max_length, summed over sequences (dr_grpo)."""
    masked = token_values * mask
    if mode == "token":
        return masked.sum()
    if mode == "sequence_mean":
        return (masked.sum(-1) / mask.sum(-1).clamp(min=1)).sum()
    if mode == "dr_grpo":
        if not max_length or max_length < 1:
            raise UserError("aggregation dr_grpo divides by the maximum completion length: give max_length >= 1")
        return masked.sum() / max_length
    raise UserError(f"unknown loss aggregation {mode!r}; choose sequence_mean, token or dr_grpo")


def unit_count(mask: torch.Tensor, mode: Aggregation) -> int:
    """Loss units in a batch: response tokens (token) or completions (sequence_mean, dr_grpo)."""
    return int(mask.sum()) if mode == "token" else int(mask.shape[0])


def _stats_mode(mode: Aggregation) -> Aggregation:
    return "sequence_mean" if mode == "dr_grpo" else mode


def policy_gradient_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    eps_low: float,
    eps_high: float,
    aggregation: Aggregation,
    kl_coef: float = 0.0,
    ref_logps: torch.Tensor | None = None,
    kl_kind: KlKind = "k3",
    max_length: int | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(summed unit loss, summed per-unit stats kl and clip_fraction) of the clipped objective
    with an optional KL penalty beta * k(pi, ref) added per token (GRPO adds it to the loss rather
    than to the reward as PPO-RLHF does). max_length: dr_grpo's constant divisor."""
    mask = mask.to(logps.dtype)
    token_loss, clipped = clipped_surrogate(logps, old_logps, advantages, eps_low, eps_high)
    stats_mode = _stats_mode(aggregation)
    stats = {"clip_fraction": aggregate(clipped.to(logps.dtype), mask, stats_mode).detach()}
    if kl_coef > 0:
        if ref_logps is None:
            raise UserError("a KL penalty (grpo.kl_coef > 0) needs reference log-probs")
        kl = kl_estimate(logps, ref_logps, kl_kind)
        token_loss = token_loss + kl_coef * kl
        stats["kl"] = aggregate(kl, mask, stats_mode).detach()
    return aggregate(token_loss, mask, aggregation, max_length), stats


def per_unit_sum(values: torch.Tensor, lengths: torch.Tensor, mode: Aggregation) -> torch.Tensor:
    """A per-completion statistic [B] summed over loss units: once per completion
    (sequence_mean, dr_grpo), or once per token, i.e. length-weighted (token)."""
    return (values * lengths).sum() if mode == "token" else values.sum()


class PolicyGradientObjective:
    """policy_gradient_loss for the training loop. A micro-batch holds input_ids, labels (IGNORE
    outside the completions), advantages [B], optionally old_logps and ref_logps [B, T] (token
    log-probs aligned with labels), and per-completion statistics under `stat/<name>` [B].
    Without old_logps the old policy is the current one (one update per batch of samples:
    rho = 1, so the objective is the plain policy gradient plus the KL term).
    Logged per loss unit: every `stat/` value, kl, clip_fraction, and entropy, approximated by
    the sampled tokens' -log pi (an unbiased estimate of the per-token entropy at temperature 1)."""

    def __init__(
        self,
        *,
        eps_low: float,
        eps_high: float,
        aggregation: Aggregation,
        kl_coef: float,
        kl_kind: KlKind,
        ignore_index: int = -100,
        max_length: int | None = None,
    ):
        self.eps_low, self.eps_high, self.aggregation = eps_low, eps_high, aggregation
        self.kl_coef, self.kl_kind, self.ignore_index = kl_coef, kl_kind, ignore_index
        self.max_length = max_length  # dr_grpo's divisor: the sampler's max_new_tokens

    def weight(self, mb: dict[str, torch.Tensor]) -> int:
        return unit_count(mb["labels"] != self.ignore_index, self.aggregation)

    def loss(self, policy, mb: dict[str, torch.Tensor]):
        mask = mb["labels"] != self.ignore_index
        logps = rollout_forward(policy, mb)  # one row per completion, or their shared-prefix layout
        old = mb["old_logps"] if "old_logps" in mb else logps.detach()
        loss, stats = policy_gradient_loss(
            logps,
            old,
            mb["advantages"],
            mask,
            eps_low=self.eps_low,
            eps_high=self.eps_high,
            aggregation=self.aggregation,
            kl_coef=self.kl_coef,
            ref_logps=mb.get("ref_logps"),
            kl_kind=self.kl_kind,
            max_length=self.max_length,
        )
        stats["entropy"] = aggregate(-logps.detach(), mask.to(logps.dtype), _stats_mode(self.aggregation))
        lengths = mask.sum(-1).to(logps.dtype)
        for key, values in mb.items():
            if key.startswith("stat/"):
                stats[key[5:]] = per_unit_sum(values.to(logps.dtype), lengths, self.aggregation)
        return loss, stats
