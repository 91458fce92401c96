"""Puzzle's architecture search as an exact mixed-integer program (Bercovich et al. 2024, eq. 1):

    minimise   sum_l sum_c score[l, c] * x[l, c]
    subject to sum_c x[l, c] = 1                      (one variant per layer)
               sum_l sum_c cost_k[l, c] * x[l, c] <= limit_k   for each resource k
               x binary,

solved by scipy.optimize.milp (HiGHS branch and bound), so the selection is optimal, not greedy.
Resources here: parameters, and optionally the KV-cache size (a memory / decode-latency proxy).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from posttrain.errors import UserError


def select_variants(
    scores: np.ndarray, costs: list[np.ndarray], limits: list[float], names: list[str] | None = None
) -> list[int]:
    """The variant index chosen for each layer (rows of `scores`, shape (layers, variants))."""
    scores = np.asarray(scores, dtype=float)
    layers, variants = scores.shape
    names = names or [f"resource {k}" for k in range(len(costs))]
    for cost, limit, name in zip(costs, limits, names):
        cheapest = float(np.asarray(cost, dtype=float).min(axis=1).sum())
        if cheapest > limit + 1e-9:
            raise UserError(
                f"{name}: budget {limit:.6g} is below the smallest choice ({cheapest:.6g}, "
                f"the cheapest variant in every layer)"
            )
    one_per_layer = np.kron(np.eye(layers), np.ones((1, variants)))
    constraints = [LinearConstraint(one_per_layer, 1, 1)]
    constraints += [
        LinearConstraint(np.asarray(c, dtype=float).reshape(1, -1), -np.inf, limit) for c, limit in zip(costs, limits)
    ]
    result = milp(scores.ravel(), constraints=constraints, integrality=np.ones(scores.size), bounds=Bounds(0, 1))
    if result.status != 0 or result.x is None:
        raise UserError(f"no selection meets every budget together ({result.message})")
    return [int(i) for i in np.round(result.x).reshape(layers, variants).argmax(axis=1)]
