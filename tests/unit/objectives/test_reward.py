"""Reward-model objectives against hand-computed values.

Shared pairs: r_w = [2, 0], r_l = [1, 1] -> r_w - r_l = [1, -1]; accuracy [1, 0], margin [1, -1].
nls(z) = -log sigma(z) = log(1 + exp(-z)).
"""

import math

import pytest
import torch

from posttrain.errors import UserError
from posttrain.objectives import reward as rm
from posttrain.objectives.reward import AttributeScores, ScorePairs


def nls(z: float) -> float:
    return math.log1p(math.exp(-z))


def pairs(**annotations) -> ScorePairs:
    chosen = torch.tensor([2.0, 0.0], dtype=torch.float64, requires_grad=True)
    rejected = torch.tensor([1.0, 1.0], dtype=torch.float64, requires_grad=True)
    return ScorePairs(chosen_scores=chosen, rejected_scores=rejected, **annotations)


def assert_values(actual: torch.Tensor, expected: list[float]) -> None:
    assert actual.shape == (len(expected),)
    assert actual.tolist() == pytest.approx(expected, rel=1e-6, abs=1e-9)


def test_bradley_terry_by_hand():
    """loss = nls(r_w - r_l) = [nls(1), nls(-1)]."""
    out = rm.bradley_terry(pairs())
    assert_values(out.losses, [nls(1), nls(-1)])
    assert_values(out.extra["accuracy"], [1, 0])
    assert_values(out.extra["margin"], [1, -1])


def test_bt_margin_by_hand():
    """m = [0.5, 1]: loss = nls(r_w - r_l - m) = [nls(0.5), nls(-2)]."""
    out = rm.bt_margin(pairs(margins=torch.tensor([0.5, 1.0], dtype=torch.float64)))
    assert_values(out.losses, [nls(0.5), nls(-2)])


def test_scaled_bt_by_hand():
    """strength m = [3, 1]: loss = m * nls(r_w - r_l) = [3 nls(1), nls(-1)]."""
    out = rm.scaled_bt(pairs(strengths=torch.tensor([3.0, 1.0], dtype=torch.float64)))
    assert_values(out.losses, [3 * nls(1), nls(-1)])


@pytest.mark.parametrize(
    "loss,annotations",
    [
        (rm.bradley_terry, {}),
        (rm.bt_margin, {"margins": torch.ones(2)}),
        (rm.scaled_bt, {"strengths": torch.full((2,), 2.0)}),
    ],
)
def test_pairwise_gradient_raises_chosen_and_lowers_rejected(loss, annotations):
    batch = pairs(**{k: v.double() for k, v in annotations.items()})
    chosen_grad, rejected_grad = torch.autograd.grad(
        loss(batch).losses.sum(), (batch.chosen_scores, batch.rejected_scores)
    )
    assert (chosen_grad < 0).all() and (rejected_grad > 0).all()


def test_missing_annotation_is_a_user_error():
    with pytest.raises(UserError, match="margins"):
        rm.bt_margin(pairs())
    with pytest.raises(UserError, match="strengths"):
        rm.scaled_bt(pairs())


def test_regression_mask_by_hand():
    """pred [[1, 2, 3], [0, 0, 0]], target [[1, 0, 4], [nan, 2, 0]], mask [[1,1,1], [0,1,1]]:
    row 1: 0 + 4 + 1 = 5 over 3 scores; row 2: (masked NaN) + 4 + 0 = 4 over 2 scores.
    Absolute errors [0+2+1, 2+0] = [3, 2]. The masked score gets zero gradient, not NaN."""
    predicted = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], requires_grad=True)
    target = torch.tensor([[1.0, 0.0, 4.0], [math.nan, 2.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [0, 1, 1]])
    out = rm.regression(AttributeScores(predicted=predicted, target=target, mask=mask))
    assert_values(out.losses, [5, 4])
    assert_values(out.extra["annotated"], [3, 2])
    assert_values(out.extra["absolute_error"], [3, 2])
    (grad,) = torch.autograd.grad(out.losses.sum(), predicted)
    assert grad.tolist() == [[0.0, 4.0, -2.0], [0.0, -4.0, 0.0]]


def test_regression_without_mask_counts_every_attribute():
    """No mask: every score counts; row (1, 1) vs (0, 3): 1 + 4 = 5 over 2 scores."""
    out = rm.regression(AttributeScores(predicted=torch.tensor([[1.0, 1.0]]), target=torch.tensor([[0.0, 3.0]])))
    assert_values(out.losses, [5])
    assert_values(out.extra["annotated"], [2])
