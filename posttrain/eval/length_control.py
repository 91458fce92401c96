"""Length-controlled win rate, in the manner of AlpacaEval 2.0's LC win rate (Dubois et al., 2024).

A judge that likes long answers rewards verbosity. AlpacaEval-LC fits a logistic model of the
judge's preference with a length term and reports the preference it predicts when the two answers
have equal length. Here, for one model against one baseline:

    P(model preferred | i) = sigmoid(b0 + b1 * tanh(d_i / sd(d)))

with d_i = len(model answer) - len(baseline answer) in characters, fitted to the per-instruction
(soft) preferences by L2-regularised maximum likelihood (Newton's method). The LC win rate is
sigmoid(b0): the predicted preference at d = 0. Unlike AlpacaEval we fit no per-instruction
difficulty term (it needs many models judged on the same instructions).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

L2 = 1e-3  # keeps b0 finite when one side wins everything
NEWTON_STEPS = 50


def length_features(length_diffs: Sequence[float]) -> np.ndarray:
    d = np.asarray(length_diffs, dtype=float)
    scale = d.std() if d.std() > 0 else 1.0
    return np.tanh(d / scale)


def fit_logistic(x: np.ndarray, targets: np.ndarray, l2: float = L2) -> np.ndarray:
    """(b0, b1) maximising sum of targets*log(p) + (1-targets)*log(1-p) - l2*|b|^2/2."""
    design = np.stack([np.ones_like(x), x], axis=1)
    beta = np.zeros(2)
    for _ in range(NEWTON_STEPS):
        p = 1 / (1 + np.exp(-design @ beta))
        gradient = design.T @ (targets - p) - l2 * beta
        hessian = (design * (p * (1 - p))[:, None]).T @ design + l2 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        beta = beta + step
        if np.abs(step).max() < 1e-10:
            break
    return beta


def length_controlled_win_rate(preferences: Sequence[float], length_diffs: Sequence[float]) -> float:
    """Predicted preference for the model at equal lengths (see the module docstring)."""
    if not preferences:
        return float("nan")
    beta = fit_logistic(length_features(length_diffs), np.asarray(preferences, dtype=float))
    return 1 / (1 + math.exp(-beta[0]))
