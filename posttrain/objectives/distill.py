"""Logit distillation objectives: pure functions of student and teacher log-probabilities over
one common support (the whole vocabulary, or the teacher's cached top-k tokens).

Generalised Jensen-Shannon divergence (GKD, Agarwal et al. 2024, eq. 1, as TRL's
generalized_jsd_loss computes it), per position, with M = beta p_T + (1 - beta) p_S:

    JSD_beta = beta KL(p_T || M) + (1 - beta) KL(p_S || M)
    beta = 0: forward KL(p_T || p_S) = sum_v p_T (log p_T - log p_S)   (supervised KD, Hinton 2015)
    beta = 1: reverse KL(p_S || p_T) = sum_v p_S (log p_S - log p_T)   (mode seeking, MiniLLM)

Log-probs come from logits / temperature. With a top-k teacher cache both distributions are
renormalised over the teacher's k tokens (restrict_to_support), so the divergences are proper
divergences on that support; with k = vocabulary size this is exactly the full-vocabulary loss.
"""

from __future__ import annotations

import math

import torch

LOSSES = {"forward_kl": 0.0, "reverse_kl": 1.0}  # name -> the beta it is; "jsd" takes the recipe's


def _kl(p_logp: torch.Tensor, q_logp: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per row, from (finite) log-probs."""
    return (p_logp.exp() * (p_logp - q_logp)).sum(dim=-1)


def generalized_jsd(student_logp: torch.Tensor, teacher_logp: torch.Tensor, beta: float) -> torch.Tensor:
    """[N] divergences between rows of [N, K] log-probs (see the module docstring)."""
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    if beta == 0.0:
        return _kl(teacher_logp, student_logp)
    if beta == 1.0:
        return _kl(student_logp, teacher_logp)
    mixture = torch.logsumexp(torch.stack([student_logp + math.log1p(-beta), teacher_logp + math.log(beta)]), dim=0)
    return beta * _kl(teacher_logp, mixture) + (1 - beta) * _kl(student_logp, mixture)


def forward_kl(student_logp: torch.Tensor, teacher_logp: torch.Tensor) -> torch.Tensor:
    return generalized_jsd(student_logp, teacher_logp, 0.0)


def reverse_kl(student_logp: torch.Tensor, teacher_logp: torch.Tensor) -> torch.Tensor:
    return generalized_jsd(student_logp, teacher_logp, 1.0)


def beta_for(loss: str, beta: float) -> float:
    """The JSD beta a loss name stands for."""
    return LOSSES.get(loss, beta)


def restrict_to_support(logp: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """Log-probs [N, V] gathered at token ids [N, k] and renormalised over them."""
    picked = logp.gather(-1, support)
    return picked - torch.logsumexp(picked, dim=-1, keepdim=True)


def scaled_logprobs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return torch.log_softmax(logits.float() / temperature, dim=-1)
