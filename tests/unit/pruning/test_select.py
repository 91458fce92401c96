"""The MIP selection (pruning/select.py) against brute force over every assignment."""

import itertools

import numpy as np
import pytest

from posttrain.errors import UserError
from posttrain.pruning.select import select_variants


def brute_force(scores, costs, limits):
    best, best_pick = np.inf, None
    for pick in itertools.product(range(scores.shape[1]), repeat=scores.shape[0]):
        rows = range(scores.shape[0])
        if all(sum(c[r, p] for r, p in zip(rows, pick)) <= lim + 1e-9 for c, lim in zip(costs, limits)):
            total = sum(scores[r, p] for r, p in zip(rows, pick))
            if total < best - 1e-12:
                best, best_pick = total, list(pick)
    return best, best_pick


def test_hand_made_table_picks_the_optimum():
    # 3 layers x 3 variants (parent 6, half 3, no-op 0 parameters); budget 7 of the parent's 18.
    # By hand: half/half/no-op = 6 params, KL 0.1 + 0.2 + 0.5 = 0.8; the next best,
    # half/no-op/half (6 params), costs 0.1 + 2.0 + 0.4 = 2.5; parent/no-op/no-op 0 + 2 + 0.5 = 2.5.
    scores = np.array([[0.0, 0.1, 3.0], [0.0, 0.2, 2.0], [0.0, 0.4, 0.5]])
    params = np.array([[6, 3, 0], [6, 3, 0], [6, 3, 0]], dtype=float)
    pick = select_variants(scores, [params], [7])
    assert pick == [1, 1, 2]
    assert scores[range(3), pick].sum() == pytest.approx(0.8)
    assert brute_force(scores, [params], [7]) == (pytest.approx(0.8), [1, 1, 2])
    # a looser budget (10) lets layer 1 keep its parent block: half/parent/no-op, 0.6
    assert select_variants(scores, [params], [10]) == [1, 0, 2]


@pytest.mark.parametrize("seed", range(6))
def test_random_tables_match_brute_force_under_two_budgets(seed):
    rng = np.random.default_rng(seed)
    layers, variants = 4, 4
    scores = rng.uniform(0, 1, (layers, variants))
    scores[:, 0] = 0.0  # the parent's block
    params = np.tile(np.array([10.0, 6.0, 3.0, 0.0]), (layers, 1)) + rng.integers(0, 3, (layers, variants))
    kv = np.tile(np.array([2.0, 1.0, 2.0, 0.0]), (layers, 1))
    limits = [params.sum() * 0.55, 5.0]
    pick = select_variants(scores, [params, kv], limits)
    best, _ = brute_force(scores, [params, kv], limits)
    assert scores[range(layers), pick].sum() == pytest.approx(best)
    assert params[range(layers), pick].sum() <= limits[0] + 1e-9
    assert kv[range(layers), pick].sum() <= limits[1] + 1e-9


def test_a_budget_below_the_smallest_choice_is_one_line():
    params = np.array([[6, 3], [6, 3]], dtype=float)
    with pytest.raises(UserError, match="budget 5 is below the smallest choice \\(6"):
        select_variants(np.zeros((2, 2)), [params], [5.0], ["budget"])
