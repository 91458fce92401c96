"""Preference objectives against hand-computed values.

The shared batch (two pairs, float64):
    policy_chosen  [-1, -2]    ref_chosen   [-2, -2.5]  -> chosen log-ratios   [1, 0.5]
    policy_rejected[-3, -1]    ref_rejected [-2, -1.5]  -> rejected log-ratios [-1, 0.5]
    h = chosen - rejected = [2, 0]
    chosen_lengths [2, 4], rejected_lengths [3, 2]
    avg policy logps: chosen [-0.5, -0.5], rejected [-1, -0.5]
    avg log-ratios:   chosen [0.5, 0.125], rejected [-1/3, 0.25]
nls(z) = -log sigma(z) = log(1 + exp(-z)) is written out with math below.
"""

import math

import pytest
import torch

from posttrain.errors import UserError
from posttrain.objectives import preference as po
from posttrain.objectives.preference import PairLogps, PreferenceConfig, UnpairedLogps


def nls(z: float) -> float:
    """-log sigma(z) = log(1 + e^{-z})."""
    return math.log1p(math.exp(-z))


def sig(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64, requires_grad=True)


def make_batch(**overrides) -> PairLogps:
    fields = dict(
        policy_chosen_logps=t(-1, -2),
        policy_rejected_logps=t(-3, -1),
        ref_chosen_logps=t(-2, -2.5),
        ref_rejected_logps=t(-2, -1.5),
        chosen_lengths=torch.tensor([2.0, 4.0], dtype=torch.float64),
        rejected_lengths=torch.tensor([3.0, 2.0], dtype=torch.float64),
    )
    fields.update(overrides)
    return PairLogps(**fields)


def assert_values(actual: torch.Tensor, expected: list[float]) -> None:
    assert actual.shape == (len(expected),)
    for a, e in zip(actual.tolist(), expected):
        assert math.isclose(a, e, rel_tol=1e-6, abs_tol=1e-9), (actual.tolist(), expected)


def grads(losses: torch.Tensor, batch: PairLogps) -> tuple[torch.Tensor, torch.Tensor]:
    """d sum(losses) / d policy_chosen_logps and d / d policy_rejected_logps."""
    return torch.autograd.grad(losses.sum(), (batch.policy_chosen_logps, batch.policy_rejected_logps))


def test_sigmoid_by_hand():
    """beta 0.5: beta*h = [1, 0], loss = [nls(1), nls(0) = log 2]; rewards beta*log-ratios."""
    out = po.sigmoid(make_batch(), PreferenceConfig(beta=0.5))
    assert_values(out.losses, [nls(1), math.log(2)])
    assert_values(out.chosen_rewards, [0.5, 0.25])
    assert_values(out.rejected_rewards, [-0.5, 0.25])
    assert not out.chosen_rewards.requires_grad and not out.extra["logps_chosen"].requires_grad


def test_conservative_by_hand():
    """cDPO e 0.2, beta 0.5: loss = 0.8*nls(beta*h) + 0.2*nls(-beta*h) -> [0.8 nls(1) + 0.2 nls(-1), log 2]."""
    out = po.conservative(make_batch(), PreferenceConfig(beta=0.5, label_smoothing=0.2))
    assert_values(out.losses, [0.8 * nls(1) + 0.2 * nls(-1), math.log(2)])


def test_robust_by_hand():
    """rDPO e 0.2, beta 0.5: loss = [0.8*nls(beta*h) - 0.2*nls(-beta*h)] / 0.6;
    at h = 0 it is (0.8 - 0.2) log 2 / 0.6 = log 2."""
    out = po.robust(make_batch(), PreferenceConfig(beta=0.5, label_noise=0.2))
    assert_values(out.losses, [(0.8 * nls(1) - 0.2 * nls(-1)) / 0.6, math.log(2)])


def test_hinge_by_hand():
    """beta 0.5: relu(1 - beta*h) = [relu(0), relu(1)] = [0, 1]; on the active pair the gradient is
    -beta for the chosen and +beta for the rejected log-prob, 0 on the inactive one."""
    batch = make_batch()
    out = po.hinge(batch, PreferenceConfig(beta=0.5))
    assert_values(out.losses, [0, 1])
    chosen_grad, rejected_grad = grads(out.losses, batch)
    assert_values(chosen_grad, [0, -0.5])
    assert_values(rejected_grad, [0, 0.5])


def test_ipo_by_hand_minimum_at_half_inverse_beta():
    """beta 0.25: 1/(2 beta) = 2, loss = (h - 2)^2 = [0, 4]. Pair 1 sits at the minimum h = 2:
    zero gradient; pair 2 (h = 0 < 2) is pushed up: d/d chosen = 2(h - 2) = -4, d/d rejected = +4."""
    batch = make_batch()
    out = po.ipo(batch, PreferenceConfig(beta=0.25))
    assert_values(out.losses, [0, 4])
    chosen_grad, rejected_grad = grads(out.losses, batch)
    assert_values(chosen_grad, [0, -4])
    assert_values(rejected_grad, [0, 4])


def test_ipo_on_length_averaged_logps():
    """beta 0.25, averaged: h = [0.5 + 1/3, 0.125 - 0.25] = [5/6, -1/8]; loss = (h - 2)^2."""
    out = po.ipo(make_batch(), PreferenceConfig(beta=0.25, ipo_average_logps=True))
    assert_values(out.losses, [(5 / 6 - 2) ** 2, (-1 / 8 - 2) ** 2])


def test_dpo_norm_by_hand():
    """beta 0.5 on averaged log-ratios: h = [5/6, -1/8], loss = [nls(5/12), nls(-1/16)];
    rewards beta * averaged log-ratios = [0.25, 0.0625] and [-1/6, 0.125]."""
    out = po.dpo_norm(make_batch(), PreferenceConfig(beta=0.5))
    assert_values(out.losses, [nls(5 / 12), nls(-1 / 16)])
    assert_values(out.chosen_rewards, [0.25, 0.0625])
    assert_values(out.rejected_rewards, [-1 / 6, 0.125])


def test_dpo_norm_is_sigmoid_on_length_divided_logps():
    batch = make_batch()
    c, r = batch.chosen_lengths, batch.rejected_lengths
    divided = make_batch(
        policy_chosen_logps=batch.policy_chosen_logps / c,
        ref_chosen_logps=batch.ref_chosen_logps / c,
        policy_rejected_logps=batch.policy_rejected_logps / r,
        ref_rejected_logps=batch.ref_rejected_logps / r,
    )
    cfg = PreferenceConfig(beta=0.5)
    assert torch.allclose(po.dpo_norm(batch, cfg).losses, po.sigmoid(divided, cfg).losses)


def test_simpo_by_hand():
    """beta 2, gamma 0.5: beta*(avg_w - avg_l) - gamma = [2*0.5 - 0.5, 2*0 - 0.5] = [0.5, -0.5];
    rewards beta*avg_logp: chosen [-1, -1], rejected [-2, -1]."""
    out = po.simpo(make_batch(), PreferenceConfig(beta=2.0, gamma=0.5))
    assert_values(out.losses, [nls(0.5), nls(-0.5)])
    assert_values(out.chosen_rewards, [-1, -1])
    assert_values(out.rejected_rewards, [-2, -1])


def test_simpo_gamma_beta_ratio_and_no_reference():
    """gamma_beta_ratio 0.25 with beta 2 is gamma 0.5; the reference log-probs are never read."""
    with_ratio = po.simpo(
        make_batch(ref_chosen_logps=None, ref_rejected_logps=None), PreferenceConfig(beta=2.0, gamma_beta_ratio=0.25)
    )
    other_ref = po.simpo(
        make_batch(ref_chosen_logps=t(5, 5), ref_rejected_logps=t(-9, 9)), PreferenceConfig(beta=2.0, gamma=0.5)
    )
    assert_values(with_ratio.losses, [nls(0.5), nls(-0.5)])
    assert torch.equal(with_ratio.losses, other_ref.losses)


def test_cpo_by_hand():
    """beta 0.5: beta*(logp_w - logp_l) = [0.5*2, 0.5*(-1)] = [1, -0.5];
    NLL(y_w) = -logp_w/|y_w| = [0.5, 0.5]; loss = [nls(1) + 0.5, nls(-0.5) + 0.5]."""
    out = po.cpo(make_batch(), PreferenceConfig(beta=0.5))
    assert_values(out.losses, [nls(1) + 0.5, nls(-0.5) + 0.5])
    assert_values(out.extra["nll"], [0.5, 0.5])


def hand_log_odds(a: float) -> float:
    """log(p/(1-p)) with p = e^a."""
    return a - math.log(1 - math.exp(a))


def test_orpo_by_hand():
    """lambda 0.1: avg_w = [-0.5, -0.5], avg_l = [-1, -0.5]; NLL = [0.5, 0.5];
    pair 1: 0.5 + 0.1 * nls(lo(-0.5) - lo(-1)), pair 2 (equal odds): 0.5 + 0.1 * log 2."""
    out = po.orpo(make_batch(), PreferenceConfig(orpo_lambda=0.1))
    ratio = hand_log_odds(-0.5) - hand_log_odds(-1)
    assert_values(out.losses, [0.5 + 0.1 * nls(ratio), 0.5 + 0.1 * math.log(2)])
    assert_values(out.chosen_rewards - out.rejected_rewards, [ratio, 0])


def test_log_odds_stable_in_float32():
    """Near p = 1 (avg_logp = -1e-5) log(1 - exp(a)) must come from expm1; far below, log1p."""
    a = torch.tensor([-1e-5, -0.5, -50.0], dtype=torch.float32)
    expected = [a_ - math.log(-math.expm1(a_)) for a_ in a.tolist()]
    for got, want in zip(po.log_odds(a).tolist(), expected):
        assert math.isclose(got, want, rel_tol=1e-5)
    assert torch.isfinite(po.log_odds(torch.tensor([0.0]))).all()


def test_selm_by_hand_and_sign():
    """beta 0.5, alpha 0.1: y_ref log-ratios logp_pi - logp_ref = [-4+3, -2+3] = [-1, 1];
    loss = DPO + alpha*beta*[-1, 1] = [nls(1) - 0.05, log 2 + 0.05]. The optimism term is MINIMISED,
    so its gradient pushes logp_pi(y_ref) down: d loss / d logp_pi(y_ref) = +alpha*beta = 0.05."""
    batch = make_batch(policy_ref_sample_logps=t(-4, -2), ref_ref_sample_logps=t(-3, -3))
    out = po.selm(batch, PreferenceConfig(beta=0.5, selm_alpha=0.1))
    assert_values(out.losses, [nls(1) - 0.05, math.log(2) + 0.05])
    (sample_grad,) = torch.autograd.grad(out.losses.sum(), batch.policy_ref_sample_logps)
    assert_values(sample_grad, [0.05, 0.05])


def test_rebel_by_hand():
    """eta 2: (logp_pi - logp_old)/eta: y [(-1+1.5)/2, 0] = [0.25, 0], y' [(-3+2)/2, 0] = [-0.5, 0];
    prediction [0.75, 0]; target r(y) - r(y') = [1 - 0, 0 - 0.5] = [1, -0.5];
    loss = [(0.75-1)^2, (0+0.5)^2] = [0.0625, 0.25]. d loss / d logp_pi(y) = 2(pred - target)/eta
    = [-0.25, 0.5]: the regression pushes logp_pi(y) up only where the reward gap is under-predicted."""
    batch = make_batch(
        ref_chosen_logps=None,
        ref_rejected_logps=None,
        old_chosen_logps=t(-1.5, -2),
        old_rejected_logps=t(-2, -1),
        chosen_scores=t(1, 0),
        rejected_scores=t(0, 0.5),
    )
    out = po.rebel(batch, PreferenceConfig(rebel_eta=2.0))
    assert_values(out.losses, [0.0625, 0.25])
    chosen_grad, rejected_grad = grads(out.losses, batch)
    assert_values(chosen_grad, [-0.25, 0.5])
    assert_values(rejected_grad, [0.25, -0.5])


def test_rebel_symmetric_under_swapping_the_two_responses():
    fields = dict(
        policy_chosen_logps=t(-1, -2),
        policy_rejected_logps=t(-3, -1),
        old_chosen_logps=t(-1.5, -2),
        old_rejected_logps=t(-2, -1),
        chosen_scores=t(1, 0),
        rejected_scores=t(0, 0.5),
    )
    swapped = {
        k.replace("chosen", "TMP").replace("rejected", "chosen").replace("TMP", "rejected"): v
        for k, v in fields.items()
    }
    cfg = PreferenceConfig(rebel_eta=2.0)
    assert torch.allclose(po.rebel(PairLogps(**fields), cfg).losses, po.rebel(PairLogps(**swapped), cfg).losses)


def kto_batch(desirable: list[bool], z0: torch.Tensor | None = None) -> UnpairedLogps:
    return UnpairedLogps(
        policy_logps=t(-1, -2),
        ref_logps=t(-2, -1.5),
        desirable=torch.tensor(desirable),
        kl_reference_point=torch.tensor(0.5, dtype=torch.float64) if z0 is None else z0,
    )


def test_kto_by_hand():
    """beta 0.5, z0 0.5, lambda_D 1, lambda_U 2; r = [-1+2, -2+1.5] = [1, -0.5].
    Row 1 desirable: 1*(1 - sigma(0.5*(1 - 0.5))) = 1 - sigma(0.25).
    Row 2 undesirable: 2*(1 - sigma(0.5*(0.5 + 0.5))) = 2*(1 - sigma(0.5))."""
    out = po.kto(kto_batch([True, False]), PreferenceConfig(beta=0.5, kto_undesirable_weight=2.0))
    assert_values(out.losses, [1 - sig(0.25), 2 * (1 - sig(0.5))])
    assert_values(out.chosen_rewards, [0.5, 0])
    assert_values(out.rejected_rewards, [0, -0.25])
    assert_values(out.extra["desirable"], [1, 0])


def test_kto_desirable_raises_and_undesirable_lowers_likelihood():
    """Same rows, flags flipped: the gradient sign on logp_pi flips with the flag."""
    cfg = PreferenceConfig(beta=0.5)
    for flags, sign in (([True, True], -1), ([False, False], 1)):
        batch = kto_batch(flags)
        (grad,) = torch.autograd.grad(po.kto(batch, cfg).losses.sum(), batch.policy_logps)
        assert (grad * sign > 0).all()


def test_kto_reference_point_is_detached_and_clamped():
    """z0 = max(0, sum(policy - ref) / count): log-ratios [1, 0.5] -> 0.75; [-1, -1] -> 0; a count of
    0 (no rows) -> 0. No gradient reaches z0."""
    assert math.isclose(float(po.kto_reference_point((t(-1, -2) - t(-2, -2.5)).sum(), t(2.0))), 0.75)
    assert float(po.kto_reference_point((t(-3, -3) - t(-2, -2)).sum(), t(2.0))) == 0.0
    assert float(po.kto_reference_point(t(0.0), t(0.0))) == 0.0
    z0 = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    losses = po.kto(kto_batch([True, False], z0), PreferenceConfig()).losses
    assert torch.autograd.grad(losses.sum(), z0, allow_unused=True) == (None,)


AT_REFERENCE = dict(
    ref_chosen_logps=t(-1, -2),
    ref_rejected_logps=t(-3, -1),
    policy_ref_sample_logps=t(-4, -2),
    ref_ref_sample_logps=t(-4, -2),
)


@pytest.mark.parametrize(
    "loss", ["sigmoid", "conservative", "robust", "hinge", "ipo", "dpo_norm", "simpo", "cpo", "orpo", "selm"]
)
def test_gradient_raises_chosen_and_lowers_rejected(loss):
    """At initialisation (policy = reference, h = 0) every pairwise objective's descent raises
    logp_pi(y_w) and lowers logp_pi(y_l): d loss/d chosen < 0, d loss/d rejected > 0."""
    batch = make_batch(**AT_REFERENCE)
    cfg = PreferenceConfig(beta=0.5, label_smoothing=0.2, label_noise=0.2, gamma=0.5)
    chosen_grad, rejected_grad = grads(getattr(po, loss)(batch, cfg).losses, batch)
    assert (chosen_grad < 0).all() and (rejected_grad > 0).all()


@pytest.mark.parametrize("variant", [dict(label_smoothing=0.0), dict(label_noise=0.0), dict(selm_alpha=0.0)])
def test_variants_reduce_to_sigmoid(variant):
    """cDPO with e = 0, rDPO with e = 0 and SELM with alpha = 0 are DPO."""
    loss = {"label_smoothing": po.conservative, "label_noise": po.robust, "selm_alpha": po.selm}[next(iter(variant))]
    batch = make_batch(policy_ref_sample_logps=t(-4, -2), ref_ref_sample_logps=t(-3, -3))
    cfg = PreferenceConfig(beta=0.5, **variant)
    assert torch.allclose(loss(batch, cfg).losses, po.sigmoid(batch, cfg).losses)


def test_missing_input_is_a_user_error():
    with pytest.raises(UserError, match="ref_chosen_logps"):
        po.sigmoid(make_batch(ref_chosen_logps=None), PreferenceConfig())
    with pytest.raises(UserError, match="policy_ref_sample_logps"):
        po.selm(make_batch(), PreferenceConfig())


@pytest.mark.parametrize(
    "bad",
    [
        dict(beta=0.0),
        dict(label_smoothing=0.6),
        dict(label_noise=0.5),
        dict(gamma=0.5, gamma_beta_ratio=0.25),
        dict(rebel_eta=0.0),
        dict(orpo_lambda=-1.0),
    ],
)
def test_config_rejects_bad_values(bad):
    with pytest.raises(UserError):
        PreferenceConfig(**bad)


def test_summed_statistics():
    """sigmoid, beta 0.5: rewards chosen [0.5, 0.25], rejected [-0.5, 0.25] -> sums 0.75, -0.25;
    margins [1, 0] -> 1; accuracy [1, 0] (a tie is not a win) -> 1; logps_chosen -1 + -2 = -3."""
    stats = po.summed_statistics(po.sigmoid(make_batch(), PreferenceConfig(beta=0.5)))
    expected = {
        "rewards_chosen": 0.75,
        "rewards_rejected": -0.25,
        "rewards_margin": 1.0,
        "rewards_accuracy": 1.0,
        "logps_chosen": -3.0,
        "logps_rejected": -4.0,
    }
    assert {k: float(v) for k, v in stats.items()} == pytest.approx(expected)
