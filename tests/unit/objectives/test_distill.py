"""Distillation divergences by hand (values and gradients), against TRL's GKD loss when trl is
importable, and through the chunked head (model/distill_head.py)."""

import math

import pytest
import torch

from posttrain.model.distill_head import divergence_sum
from posttrain.objectives import distill as kd

P_T = torch.tensor([[0.5, 0.5]])
P_S = torch.tensor([[0.25, 0.75]])


def test_values_by_hand():
    s, t = P_S.log(), P_T.log()
    # forward: .5 ln(.5/.25) + .5 ln(.5/.75) = .5 ln(4/3)
    assert kd.forward_kl(s, t).item() == pytest.approx(0.5 * math.log(4 / 3), abs=1e-6)
    # reverse: .25 ln(.25/.5) + .75 ln(.75/.5)
    assert kd.reverse_kl(s, t).item() == pytest.approx(0.25 * math.log(0.5) + 0.75 * math.log(1.5), abs=1e-6)
    # jsd(.5): M = [.375, .625]; .5 KL(T||M) + .5 KL(S||M)
    m = [0.375, 0.625]
    kl_t = 0.5 * math.log(0.5 / m[0]) + 0.5 * math.log(0.5 / m[1])
    kl_s = 0.25 * math.log(0.25 / m[0]) + 0.75 * math.log(0.75 / m[1])
    assert kd.generalized_jsd(s, t, 0.5).item() == pytest.approx(0.5 * kl_t + 0.5 * kl_s, abs=1e-6)


def test_gradients_by_hand():
    z = P_S.log().clone().requires_grad_(True)
    kd.forward_kl(torch.log_softmax(z, -1), P_T.log()).sum().backward()
    assert torch.allclose(z.grad, P_S - P_T, atol=1e-6)  # d KL(T||S) / d z = p_S - p_T
    z.grad = None
    kd.reverse_kl(torch.log_softmax(z, -1), P_T.log()).sum().backward()
    rkl = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    # d KL(S||T) / d z_j = p_S,j (log p_S,j - log p_T,j - KL)
    expected = P_S * (P_S.log() - P_T.log() - rkl)
    assert torch.allclose(z.grad, expected, atol=1e-6)


def test_restrict_to_full_support_is_identity():
    logp = torch.log_softmax(torch.randn(3, 6), -1)
    support = torch.arange(6).expand(3, 6)
    assert torch.allclose(kd.restrict_to_support(logp, support), logp, atol=1e-6)
    top = kd.restrict_to_support(logp, logp.topk(2, -1).indices)
    assert torch.allclose(top.exp().sum(-1), torch.ones(3))


@pytest.mark.slow  # importing trl.experimental.gkd alone takes 15-30 s on the CI machines
@pytest.mark.parametrize("beta", [0.0, 0.3, 1.0])
def test_matches_trl_generalized_jsd(beta):
    trl_gkd = pytest.importorskip("trl.experimental.gkd", reason="trl not installed (bench extra)")
    gen = torch.Generator().manual_seed(0)
    student = torch.randn(2, 5, 11, generator=gen, requires_grad=True)
    teacher = torch.randn(2, 5, 11, generator=gen)
    labels = torch.tensor([[-100, 3, 4, -100, 1], [2, 2, -100, 5, 6]])
    theirs = trl_gkd.GKDTrainer.generalized_jsd_loss(student, teacher, labels, beta=beta, temperature=2.0)
    (grad_theirs,) = torch.autograd.grad(theirs, student)
    keep = labels != -100
    ours = (
        kd.generalized_jsd(kd.scaled_logprobs(student[keep], 2.0), kd.scaled_logprobs(teacher[keep], 2.0), beta).sum()
        / keep.sum()
    )
    (grad_ours,) = torch.autograd.grad(ours, student)
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-6)
    assert torch.allclose(grad_ours, grad_theirs, atol=1e-6)


def test_chunked_head_equals_full_vocabulary_computation():
    gen = torch.Generator().manual_seed(1)
    head = torch.nn.Linear(8, 13, bias=False)
    hidden = torch.randn(10, 8, generator=gen, requires_grad=True)
    teacher = torch.log_softmax(torch.randn(10, 13, generator=gen), -1)
    chunked = divergence_sum(head, hidden, lambda a, b: (teacher[a:b], None), 0.5, 1.0, chunk_size=3)
    (g_chunked,) = torch.autograd.grad(chunked, hidden)
    full = kd.generalized_jsd(torch.log_softmax(head(hidden), -1), teacher, 0.5).sum()
    (g_full,) = torch.autograd.grad(full, hidden)
    assert chunked.item() == pytest.approx(full.item(), rel=1e-5)
    assert torch.allclose(g_chunked, g_full, atol=1e-6)
