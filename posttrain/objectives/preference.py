"""Preference-optimisation objectives as pure functions of per-sequence log-probs.

Notation (see /work/shared/METHODS.md): logp(y) is the SUM of the response tokens' log-probs,
|y| the response token count, avg_logp = logp/|y|, y_w chosen, y_l rejected, pi the policy,
ref the frozen reference, sigma the logistic function, and

    h = (logp_pi(y_w) - logp_ref(y_w)) - (logp_pi(y_l) - logp_ref(y_l)).

Every paired objective has the signature `loss(batch: PairLogps, cfg: PreferenceConfig) ->
PreferenceOutput` and returns PER-EXAMPLE losses of shape [B], never a mean: the training loop sums
them and divides by the number of pairs in the whole optimizer step, so gradient accumulation
gives the same update as one big batch. The unpaired KTO objective takes `UnpairedLogps` instead.
Which inputs each objective reads is recorded in objectives/registry.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from posttrain.errors import UserError


@dataclass(frozen=True, kw_only=True, slots=True)
class PairLogps:
    """Per-pair quantities, each a float tensor of shape [B]. Optional fields are read only by the
    objectives that need them (registry.py says which); a missing one raises UserError."""

    policy_chosen_logps: Tensor
    policy_rejected_logps: Tensor
    ref_chosen_logps: Tensor | None = None  # None for reference-free objectives
    ref_rejected_logps: Tensor | None = None
    chosen_lengths: Tensor | None = None  # response token counts, for length-normalised objectives
    rejected_lengths: Tensor | None = None
    policy_ref_sample_logps: Tensor | None = None  # SELM: logp_pi(y_ref), y_ref ~ ref(.|x)
    ref_ref_sample_logps: Tensor | None = None  # SELM: logp_ref(y_ref)
    old_chosen_logps: Tensor | None = None  # REBEL: logp of y under the policy that sampled it
    old_rejected_logps: Tensor | None = None  # REBEL: same for y'
    chosen_scores: Tensor | None = None  # REBEL: reward r(x, y)
    rejected_scores: Tensor | None = None  # REBEL: reward r(x, y')
    # LOGO: rejected responses beyond the first, one entry each (shape [K]); extra_rejected_pair
    # holds the index in [0, B) of the pair each belongs to (long)
    extra_rejected_logps: Tensor | None = None
    extra_rejected_lengths: Tensor | None = None
    extra_rejected_pair: Tensor | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class UnpairedLogps:
    """KTO's unpaired batch: one completion per row, shape [B] each.
    `desirable` is a bool tensor (True = desirable, False = undesirable); `kl_reference_point` is
    z0, a scalar tensor (see kto_reference_point for how to estimate it)."""

    policy_logps: Tensor
    ref_logps: Tensor
    desirable: Tensor
    kl_reference_point: Tensor


@dataclass(frozen=True, kw_only=True, slots=True)
class PreferenceConfig:
    """Hyperparameters of the preference objectives; each objective reads only its own.

    SimPO's margin: set `gamma` (the paper's gamma) OR `gamma_beta_ratio` (the SimPO code's
    parameter, gamma = beta * gamma_beta_ratio), not both: setting both is a UserError, so neither
    silently wins. With neither set the margin is 0."""

    beta: float = 0.1
    label_smoothing: float = 0.0  # cDPO: probability e that a label is flipped, in [0, 0.5]
    label_noise: float = 0.0  # rDPO: known label-flip rate e, in [0, 0.5)
    gamma: float | None = None  # SimPO target reward margin
    gamma_beta_ratio: float | None = None  # SimPO margin as gamma / beta
    ipo_average_logps: bool = False  # IPO on length-averaged log-probs instead of sums
    cpo_nll_weight: float = 1.0  # CPO: weight of NLL(y_w); the paper uses 1
    orpo_lambda: float = 0.1  # ORPO: weight of the odds-ratio term
    selm_alpha: float = 0.001  # SELM: optimism coefficient (authors' default)
    rebel_eta: float = 1.0  # REBEL: step size eta; the log-ratio difference is divided by it
    kto_desirable_weight: float = 1.0  # KTO lambda_D
    kto_undesirable_weight: float = 1.0  # KTO lambda_U
    logo_sft_weight: float = 0.1  # LOGO lambda: weight of the SFT term

    def __post_init__(self) -> None:
        _check(self.beta > 0, f"beta must be > 0, got {self.beta}")
        _check(0 <= self.label_smoothing <= 0.5, f"label_smoothing must be in [0, 0.5], got {self.label_smoothing}")
        _check(0 <= self.label_noise < 0.5, f"label_noise must be in [0, 0.5), got {self.label_noise}")
        _check(self.gamma is None or self.gamma_beta_ratio is None, "set gamma or gamma_beta_ratio, not both")
        _check(self.rebel_eta > 0, f"rebel_eta must be > 0, got {self.rebel_eta}")
        for name in (
            "cpo_nll_weight",
            "orpo_lambda",
            "selm_alpha",
            "kto_desirable_weight",
            "kto_undesirable_weight",
            "logo_sft_weight",
        ):
            _check(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")

    @property
    def simpo_gamma(self) -> float:
        """SimPO's margin gamma: `gamma`, else beta * `gamma_beta_ratio`, else 0."""
        if self.gamma is not None:
            return self.gamma
        return self.beta * self.gamma_beta_ratio if self.gamma_beta_ratio is not None else 0.0


@dataclass(frozen=True, slots=True)
class PreferenceOutput:
    """losses [B] (with grad); chosen_rewards / rejected_rewards [B], the implicit rewards the
    objective's paper defines (detached); extra: further detached per-example statistics [B]."""

    losses: Tensor
    chosen_rewards: Tensor
    rejected_rewards: Tensor
    extra: dict[str, Tensor] = field(default_factory=dict)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(f"preference config: {message}")


def _need(batch: PairLogps, name: str, loss: str) -> Tensor:
    value = getattr(batch, name)
    if value is None:
        raise UserError(f"preference loss '{loss}' needs '{name}', which the batch does not carry")
    return value


def _logratios(batch: PairLogps, loss: str) -> tuple[Tensor, Tensor]:
    """(logp_pi(y_w) - logp_ref(y_w), logp_pi(y_l) - logp_ref(y_l))."""
    chosen = batch.policy_chosen_logps - _need(batch, "ref_chosen_logps", loss)
    rejected = batch.policy_rejected_logps - _need(batch, "ref_rejected_logps", loss)
    return chosen, rejected


def _averaged(batch: PairLogps, chosen: Tensor, rejected: Tensor, loss: str) -> tuple[Tensor, Tensor]:
    """Divide per-sequence quantities by the chosen / rejected response token counts."""
    return chosen / _need(batch, "chosen_lengths", loss), rejected / _need(batch, "rejected_lengths", loss)


def _output(
    losses: Tensor, chosen_reward: Tensor, rejected_reward: Tensor, batch: PairLogps, **extra: Tensor
) -> PreferenceOutput:
    """Detach the statistics and add the policy log-probs (a falling logp_pi(y_w) is likelihood
    displacement, worth logging every step)."""
    stats = {"logps_chosen": batch.policy_chosen_logps, "logps_rejected": batch.policy_rejected_logps, **extra}
    return PreferenceOutput(
        losses, chosen_reward.detach(), rejected_reward.detach(), {k: v.detach() for k, v in stats.items()}
    )


def _dpo_family(batch: PairLogps, cfg: PreferenceConfig, losses_of_h, loss: str) -> PreferenceOutput:
    """Shared body of the objectives that are a function of h alone; rewards beta*log-ratios."""
    chosen, rejected = _logratios(batch, loss)
    return _output(losses_of_h(chosen - rejected), cfg.beta * chosen, cfg.beta * rejected, batch)


def sigmoid(batch: PairLogps, cfg: PreferenceConfig) -> PreferenceOutput:
    """DPO (Rafailov et al. 2023, "Direct Preference Optimization: Your Language Model is Secretly
    a Reward Model"): loss = -log sigma(beta*h). Implicit reward beta*(logp_pi(y) - logp_ref(y))."""
    return _dpo_family(batch, cfg, lambda h: -F.logsigmoid(cfg.beta * h), "sigmoid")


def conservative(batch: PairLogps, cfg: PreferenceConfig) -> PreferenceOutput:
    """Conservative DPO, cDPO (Mitchell 2023, "A note on DPO with noisy preferences"): DPO with
    label smoothing e = cfg.label_smoothing, the labels being flipped with probability e:
    loss = -(1-e) log sigma(beta*h) - e log sigma(-beta*h). e = 0 is DPO."""
    e = cfg.label_smoothing
    return _dpo_family(
        batch, cfg, lambda h: -(1 - e) * F.logsigmoid(cfg.beta * h) - e * F.logsigmoid(-cfg.beta * h), "conservative"
    )


def robust(batch: PairLogps, cfg: PreferenceConfig) -> PreferenceOutput:
    """Robust DPO, rDPO (Chowdhury et al. 2024, "Provably Robust DPO: Aligning Language Models
    with Noisy Feedback"): unbiased under a known label-flip rate e = cfg.label_noise:
    loss = [-(1-e) log sigma(beta*h) + e log sigma(-beta*h)] / (1 - 2e). e = 0 is DPO."""
    e = cfg.label_noise

    def losses_of_h(h: Tensor) -> Tensor:
        return (-(1 - e) * F.logsigmoid(cfg.beta * h) + e * F.logsigmoid(-cfg.beta * h)) / (1 - 2 * e)

    return _dpo_family(batch, cfg, losses_of_h, "robust")


def hinge(batch: PairLogps, cfg: PreferenceConfig) -> PreferenceOutput:
    """Hinge loss of SLiC (Zhao et al. 2023, "SLiC-HF: Sequence Likelihood Calibration with Human
    Feedback") on the DPO log-ratio difference: loss = relu(1 - beta*h); 1/beta is the margin."""
    return _dpo_family(batch, cfg, lambda h: torch.relu(1 - cfg.beta * h), "hinge")


def ipo(batch: PairLogps, cfg: PreferenceConfig) -> PreferenceOutput:
    """IPO (Azar et al. 2024, "A General Theoretical Paradigm to Understand Learning from Human
    Preferences"): loss = (h - 1/(2*beta))^2, minimal (zero) at h = 1/(2*beta); beta is the
    paper's tau. With cfg.ipo_average_logps each log-ratio is divided by its response length first
    (as TRL does); the default follows the paper's sums. Rewards: beta * the log-ratios used."""
    chosen, rejected = _logratios(batch, "ipo")
    if cfg.ipo_average_logps:
        chosen, rejected = _averaged(batch, chosen, rejected, "ipo")
    losses = (chosen - rejected - 1 / (2 * cfg.beta)) ** 2
    return _output(losses, cfg.beta * chosen, cfg.beta * rejected, batch)


def dpo_norm(batch: PairLogps, cfg: PreferenceConfig) -> PreferenceOutput:
    """Length-normalised DPO (Lambert et al. 2024, "Tulu 3: Pushing Frontiers in Open Language
    Model Post-Training"): DPO on per-token log-ratios,
    loss = -log sigma(beta*[(logp_pi(y_w)-logp_ref(y_w))/|y_w| - (logp_pi(y_l)-logp_ref(y_l))/|y_l|]).
    Rewards: beta * the length-divided log-ratios. Reported for 8B: beta 5."""
    chosen, rejected = _averaged(batch, *_logratios(batch, "dpo_norm"), "dpo_norm")
    losses = -F.logsigmoid(cfg.beta * (chosen - rejected))
    return _output(losses, cfg.beta * chosen, cfg.beta * rejected, batch)


def simpo(batch: PairLogps, cfg: PreferenceConfig) -> PreferenceOutput:
    """SimPO (Meng et al. 2024, "SimPO: Simple Preference Optimization with a Reference-Free
    Reward"): reference-free, implicit reward beta*avg_logp_pi(y), target margin gamma:
    loss = -log sigma(beta*avg_logp_pi(y_w) - beta*avg_logp_pi(y_l) - gamma).
    gamma is cfg.simpo_gamma (`gamma`, or beta * `gamma_beta_ratio`)."""
    chosen, rejected = _averaged(batch, batch.policy_chosen_logps, batch.policy_rejected_logps, "simpo")
    losses = -F.logsigmoid(cfg.beta * (chosen - rejected) - cfg.simpo_gamma)
    return _output(losses, cfg.beta * chosen, cfg.beta * rejected, batch)


def _chosen_nll(batch: PairLogps, loss: str) -> Tensor:
    """NLL(y_w) per example, averaged over the response tokens: -logp_pi(y_w) / |y_w|."""
    return -batch.policy_chosen_logps / _need(batch, "chosen_lengths", loss)


def cpo(batch: PairLogps, cfg: PreferenceConfig) -> PreferenceOutput:
    """CPO (Xu et al. 2024, "Contrastive Preference Optimization: Pushing the Boundaries of LLM
    Performance in Machine Translation"): reference-free DPO plus behaviour cloning of y_w,
    loss = -log sigma(beta*(logp_pi(y_w) - logp_pi(y_l))) + w * NLL(y_w),
    NLL(y_w) = -logp_pi(y_w)/|y_w| (token mean), w = cfg.cpo_nll_weight (1 in the paper).
    Rewards: beta*logp_pi(y)."""
    chosen, rejected = cfg.beta * batch.policy_chosen_logps, cfg.beta * batch.policy_rejected_logps
    nll = _chosen_nll(batch, "cpo")
    losses = -F.logsigmoid(chosen - rejected) + cfg.cpo_nll_weight * nll
    return _output(losses, chosen, rejected, batch, nll=nll)


def logo(batch: PairLogps, cfg: PreferenceConfig) -> PreferenceOutput:
    """LOGO (Tang et al. 2024, "LOGO -- Long cOntext aliGnment via efficient preference
    Optimization"): SimPO's reference-free reward r(x, y) = beta*avg_logp_pi(y) against M >= 1
    dis-preferred responses y_l^1..y_l^M of the same prompt, plus an SFT term on y_w:
    loss = -log sigma(r(x, y_w) - (1/M) * sum_j r(x, y_l^j) - gamma) + lambda * NLL(y_w),
    NLL(y_w) = -avg_logp_pi(y_w) (token mean, as cpo/orpo here), gamma = cfg.simpo_gamma,
    lambda = cfg.logo_sft_weight. The first rejected response is policy_rejected_logps; the others
    (M may differ between prompts) come as extra_rejected_* with the pair each belongs to. With
    M = 1 and lambda = 0 this is SimPO. The paper's text leaves the SFT term's normalisation open;
    the token mean follows the CPO/ORPO convention of this module (the loss scale is then
    independent of |y_w|). Rewards: r(y_w) and the mean r over the M rejected responses."""
    chosen, first = _averaged(batch, batch.policy_chosen_logps, batch.policy_rejected_logps, "logo")
    rejected_sum, count = cfg.beta * first, torch.ones_like(first)
    if batch.extra_rejected_logps is not None and batch.extra_rejected_logps.numel():
        extra = cfg.beta * batch.extra_rejected_logps / _need(batch, "extra_rejected_lengths", "logo")
        pair = _need(batch, "extra_rejected_pair", "logo")
        rejected_sum = rejected_sum.index_add(0, pair, extra)
        count = count.index_add(0, pair, torch.ones_like(extra))
    rejected = rejected_sum / count
    nll = -chosen
    losses = -F.logsigmoid(cfg.beta * chosen - rejected - cfg.simpo_gamma) + cfg.logo_sft_weight * nll
    return _output(losses, cfg.beta * chosen, rejected, batch, nll=nll, num_rejected=count)


def log1mexp(x: Tensor) -> Tensor:
    """log(1 - exp(x)) for x < 0, accurate everywhere (Maechler 2012, "Accurately Computing
    log(1 - exp(-|a|))"): log(-expm1(x)) near 0, log1p(-exp(x)) below -log 2."""
    return torch.where(x > -math.log(2), torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def log_odds(avg_logp: Tensor) -> Tensor:
    """log odds(y) = log(p/(1-p)) with p = exp(avg_logp) = avg_logp - log(1 - exp(avg_logp)).
    avg_logp is clamped just below 0 so a certain response (p = 1) gives a large finite value."""
    avg_logp = avg_logp.clamp(max=-1e-6)
    return avg_logp - log1mexp(avg_logp)


def orpo(batch: PairLogps, cfg: PreferenceConfig) -> PreferenceOutput:
    """ORPO (Hong et al. 2024, "ORPO: Monolithic Preference Optimization without Reference
    Model"): loss = NLL(y_w) + lambda * -log sigma(log odds(y_w) - log odds(y_l)),
    odds(y) = p/(1-p), p = exp(avg_logp_pi(y)), NLL(y_w) = -avg_logp_pi(y_w), lambda =
    cfg.orpo_lambda. The paper defines no implicit reward; the rewards returned are the log odds,
    so their margin is the log odds ratio the paper reports."""
    chosen_avg, rejected_avg = _averaged(batch, batch.policy_chosen_logps, batch.policy_rejected_logps, "orpo")
    chosen, rejected = log_odds(chosen_avg), log_odds(rejected_avg)
    nll = -chosen_avg
    losses = nll - cfg.orpo_lambda * F.logsigmoid(chosen - rejected)
    return _output(losses, chosen, rejected, batch, nll=nll)


def selm(batch: PairLogps, cfg: PreferenceConfig) -> PreferenceOutput:
    """SELM (Zhang et al. 2024, "Self-Exploring Language Models: Active Preference Elicitation for
    Online Alignment"): DPO plus an optimism term on y_ref, a response sampled from the reference
    policy for the same prompt,
    loss = -log sigma(beta*h) + alpha*beta*(logp_pi(y_ref) - logp_ref(y_ref)), alpha = cfg.selm_alpha.
    Sign: the term is an optimism bonus in an objective the paper MAXIMISES (-L_DPO plus alpha
    times the largest reward a response can reach, biasing the reward towards being high
    somewhere unexplored). The loss MINIMISED here is that objective's negative, so the log-ratio
    of y_ref enters with a PLUS sign, as in the authors' code (shenao-zhang/SELM,
    scripts/selm_trainer.py). In expectation over y_ref ~ ref the term is -alpha*beta*KL(ref || pi):
    descent lowers the policy's likelihood of responses the reference already produces and moves
    mass towards unexplored, potentially high-reward ones. alpha = 0 is DPO. Rewards as in DPO."""
    chosen, rejected = _logratios(batch, "selm")
    explore = _need(batch, "policy_ref_sample_logps", "selm") - _need(batch, "ref_ref_sample_logps", "selm")
    losses = -F.logsigmoid(cfg.beta * (chosen - rejected)) + cfg.selm_alpha * cfg.beta * explore
    return _output(losses, cfg.beta * chosen, cfg.beta * rejected, batch, ref_sample_logratio=explore)


def rebel(batch: PairLogps, cfg: PreferenceConfig) -> PreferenceOutput:
    """REBEL (Gao et al. 2024, "REBEL: Reinforcement Learning via Regressing Relative Rewards"):
    regress the policy's relative log-ratio onto the reward difference of two responses y, y'
    (put in the chosen / rejected fields; the loss is unchanged if both are swapped):
    loss = ((1/eta)*[(logp_pi(y) - logp_old(y)) - (logp_pi(y') - logp_old(y'))] - (r(x,y) - r(x,y')))^2,
    old = the policy that sampled y, y'; eta = cfg.rebel_eta. REFUEL (multi-turn) is the same loss
    with turn-h log-probs and returns. Rewards: (1/eta)*(logp_pi(y) - logp_old(y))."""
    chosen = (batch.policy_chosen_logps - _need(batch, "old_chosen_logps", "rebel")) / cfg.rebel_eta
    rejected = (batch.policy_rejected_logps - _need(batch, "old_rejected_logps", "rebel")) / cfg.rebel_eta
    target = _need(batch, "chosen_scores", "rebel") - _need(batch, "rejected_scores", "rebel")
    losses = (chosen - rejected - target) ** 2
    return _output(losses, chosen, rejected, batch, score_difference=target)


def kto_reference_point(log_ratio_sum: Tensor, count: Tensor) -> Tensor:
    """KTO's reference point z0 = max(0, mean_j [logp_pi(y'_j|x_j) - logp_ref(y'_j|x_j)]), detached,
    from the sum of the log-ratios and their count (sums add across micro-batches and processes).
    As in the KTO paper (and TRL), (x_j, y'_j) are MISMATCHED pairs: each prompt with another
    example's completion, so the mean is a biased but cheap estimate of KL(pi || ref) that carries
    no gradient. TRL takes the mean over the whole batch on every process (gathered); the loop
    gets the same by summing over the optimizer step's micro-batches and processes first."""
    return (log_ratio_sum / count.clamp(min=1)).clamp(min=0).detach()


def kto(batch: UnpairedLogps, cfg: PreferenceConfig) -> PreferenceOutput:
    """KTO (Ethayarajh et al. 2024, "KTO: Model Alignment as Prospect Theoretic Optimization"),
    unpaired. With r = logp_pi(y) - logp_ref(y) and z0 = batch.kl_reference_point (detached):
    desirable y:   loss = lambda_D * (1 - sigma(beta*(r - z0)))
    undesirable y: loss = lambda_U * (1 - sigma(beta*(z0 - r)))
    i.e. the paper's lambda_y - v(x, y). Rewards beta*r go to chosen_rewards on desirable rows and
    to rejected_rewards on undesirable rows (0 elsewhere); extra['desirable'] is the 0/1 flag, so
    per-side means are sums divided by flag counts. In summed_statistics the margin is then
    +-beta*r and the accuracy counts rows whose reward has the sign their label asks for."""
    r = batch.policy_logps - batch.ref_logps
    z0 = batch.kl_reference_point.detach()
    desirable = batch.desirable.bool()
    wanted = desirable.to(r.dtype)
    desirable_loss = cfg.kto_desirable_weight * (1 - torch.sigmoid(cfg.beta * (r - z0)))
    undesirable_loss = cfg.kto_undesirable_weight * (1 - torch.sigmoid(cfg.beta * (z0 - r)))
    losses = torch.where(desirable, desirable_loss, undesirable_loss)
    reward = (cfg.beta * r).detach()
    extra = {"desirable": wanted, "logps": batch.policy_logps.detach(), "kl_reference_point": z0.expand_as(r)}
    return PreferenceOutput(losses, reward * wanted, reward * (1 - wanted), extra)


def summed_statistics(output: PreferenceOutput) -> dict[str, Tensor]:
    """Batch sums (scalars) of the rewards, the margin chosen - rejected, the accuracy
    [chosen > rejected] and every extra statistic, for a loop that divides by the step's pair count."""
    margins = output.chosen_rewards - output.rejected_rewards
    stats = {
        "rewards_chosen": output.chosen_rewards,
        "rewards_rejected": output.rejected_rewards,
        "rewards_margin": margins,
        "rewards_accuracy": (margins > 0).to(margins.dtype),
        **output.extra,
    }
    return {name: value.sum() for name, value in stats.items()}
