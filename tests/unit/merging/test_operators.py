"""Merge operators against hand-computed tensors (formulas in posttrain/merging/operators.py)."""

import math

import pytest
import torch

from posttrain.merging import operators as ops


def sd(*values):
    return {"w": torch.tensor(values, dtype=torch.float32)}


def test_linear_soup_weighted_and_normalised():
    out = ops.linear([sd(1.0, 2.0), sd(3.0, 6.0)], [1.0, 3.0])
    # (1*[1,2] + 3*[3,6]) / 4 = [10, 20] / 4
    assert torch.allclose(out["w"], torch.tensor([2.5, 5.0]))
    raw = ops.linear([sd(1.0, 2.0), sd(3.0, 6.0)], [1.0, 3.0], normalize=False)
    assert torch.allclose(raw["w"], torch.tensor([10.0, 20.0]))


def test_task_arithmetic_adds_scaled_task_vectors():
    base, a, b = sd(1.0, 1.0), sd(2.0, 0.0), sd(1.0, 3.0)
    out = ops.task_arithmetic(base, [a, b], [0.5, 1.0], scale=2.0)
    # tau_a = [1, -1], tau_b = [0, 2]; 1 + 2 * (0.5 [1,-1] + [0,2]) = [2, 4]
    assert torch.allclose(out["w"], torch.tensor([2.0, 4.0]))


def test_magnitude_trim_keeps_top_k():
    out = ops.magnitude_trim(torch.tensor([0.1, -3.0, 2.0, -0.5]), 0.5)
    assert torch.equal(out, torch.tensor([0.0, -3.0, 2.0, 0.0]))
    assert torch.equal(ops.magnitude_trim(torch.tensor([1.0, 2.0]), 0.1), torch.tensor([0.0, 2.0]))  # k >= 1


def test_ties_trim_elect_disjoint_mean():
    base = sd(0.0, 0.0, 0.0, 0.0)
    a = sd(3.0, -1.0, 0.2, 2.0)
    b = sd(-1.0, -2.0, 0.1, -4.0)
    c = sd(2.0, 0.3, -1.5, 1.0)
    out = ops.ties(base, [a, b, c], [1.0, 1.0, 1.0], density=0.5)
    # trim (top 2 of 4 by magnitude): a -> [3,0,0,2]; b -> [0,-2,0,-4]; c -> [2,0,-1.5,0]
    # sign of the sums [5,-2,-1.5,-2] = [+,-,-,-]; agreeing: col0 a,c; col1 b; col2 c; col3 b (a's +2 out)
    # disjoint mean: [(3+2)/2, -2/1, -1.5/1, -4/1]
    assert torch.allclose(out["w"], torch.tensor([2.5, -2.0, -1.5, -4.0]))


def test_ties_weights_enter_election_and_mean():
    base = sd(1.0)
    out = ops.ties(base, [sd(2.0), sd(-1.0)], [3.0, 1.0], density=1.0)
    # weighted tau: 3*1 = 3, 1*(-2) = -2; sign +; only the first agrees: 1 + 3 / 3 = 2
    assert torch.allclose(out["w"], torch.tensor([2.0]))


def test_dare_drops_and_rescales_seeded():
    base = {"w": torch.zeros(10_000)}
    model = {"w": torch.ones(10_000)}
    first = ops.dare(base, [model], [1.0], density=0.25, seed=3)["w"]
    again = ops.dare(base, [model], [1.0], density=0.25, seed=3)["w"]
    other = ops.dare(base, [model], [1.0], density=0.25, seed=4)["w"]
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert set(first.unique().tolist()) == {0.0, 4.0}  # survivors rescaled by 1 / 0.25
    assert abs(first.mean().item() - 1.0) < 0.05  # unbiased: E[delta'] = delta
    assert abs((first > 0).float().mean().item() - 0.25) < 0.02


def test_dare_ties_uses_sign_election():
    base = sd(0.0, 0.0)
    out = ops.dare(base, [sd(1.0, -1.0), sd(-3.0, -1.0)], [1.0, 1.0], density=1.0, seed=0, combine="ties")
    # signs of sums [-2, -2] = [-, -]; agreeing: col0 only -3; col1 both -> disjoint sum (no normalise)
    assert torch.allclose(out["w"], torch.tensor([-3.0, -2.0]))


def test_slerp_on_orthogonal_vectors_and_colinear_fallback():
    a, b = sd(1.0, 0.0), sd(0.0, 2.0)
    out = ops.slerp(a, b, 0.5)["w"]
    # omega = pi/2: (sin(pi/4) a + sin(pi/4) b) / 1
    s = math.sin(math.pi / 4)
    assert torch.allclose(out, torch.tensor([s, 2 * s]))
    assert torch.allclose(ops.slerp(a, b, 0.0)["w"], a["w"]) and torch.allclose(ops.slerp(a, b, 1.0)["w"], b["w"])
    colinear = ops.slerp(sd(1.0, 1.0), sd(3.0, 3.0), 0.25)["w"]
    assert torch.allclose(colinear, torch.tensor([1.5, 1.5]))  # lerp


def test_instruction_residual():
    out = ops.instruction_residual(target=sd(10.0, 20.0), instruct=sd(2.0, 5.0), base=sd(1.0, 1.0))
    assert torch.allclose(out["w"], torch.tensor([11.0, 24.0]))


def test_mismatched_shapes_are_an_error():
    with pytest.raises(ValueError, match="shape"):
        ops.linear([sd(1.0, 2.0), sd(1.0)], [1.0, 1.0])


def test_keeps_dtype():
    a = {"w": torch.tensor([1.0, 2.0], dtype=torch.bfloat16)}
    assert ops.linear([a, a], [1.0, 1.0])["w"].dtype == torch.bfloat16
