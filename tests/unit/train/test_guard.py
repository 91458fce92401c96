import math

import pytest
import torch

from posttrain.errors import UserError
from posttrain.train.guard import MAX_SKIPS_IN_A_ROW, DivergenceGuard

T = torch.tensor


def _guard(mode="stop", weights=None):
    return DivergenceGuard([torch.nn.Parameter(weights if weights is not None else torch.ones(3))], mode)


def test_finite_step_is_applied():
    assert _guard().allow_update(1, T(2.0), T(0.5))


@pytest.mark.parametrize(
    "loss, grad_norm, words",
    [
        (math.nan, 1.0, "the loss is nan"),
        (math.inf, 1.0, "the loss is inf"),
        (2.0, math.nan, "the gradient norm is nan"),
        (2.0, math.inf, "the gradient norm is inf"),
        (6.4, 0.0, "gradient norm is exactly 0 while the loss is 6.4"),  # lr 1e3: overflowed activations
    ],
)
def test_diverged_step_stops_naming_the_step(loss, grad_norm, words):
    with pytest.raises(UserError, match=rf"^step 7: .*{words}.*training diverged") as err:
        _guard().allow_update(7, T(loss), T(grad_norm))
    assert "\n" not in str(err.value)


def test_zero_gradient_with_zero_loss_is_normal():
    """A GRPO batch whose groups all tie has zero advantages: loss 0 and gradient 0, not a fault."""
    assert _guard().allow_update(1, T(0.0), T(0.0))


def test_skip_mode_skips_then_gives_up_after_too_many_in_a_row():
    guard = _guard("skip")
    assert not guard.allow_update(1, T(math.nan), T(1.0))
    assert guard.allow_update(2, T(1.0), T(1.0))  # a good step resets the count
    for step in range(3, 3 + MAX_SKIPS_IN_A_ROW - 1):
        assert not guard.allow_update(step, T(math.nan), T(1.0))
    with pytest.raises(UserError, match="in a row"):
        guard.allow_update(99, T(math.nan), T(1.0))


def test_deepspeed_without_a_grad_norm_checks_the_loss_only():
    guard = _guard()
    assert guard.allow_update(1, T(1.0), None)
    with pytest.raises(UserError, match="the loss is nan"):
        guard.allow_update(2, T(math.nan), None)


def test_non_finite_weights_after_an_update_are_caught_before_saving_and_at_the_next_step():
    weights = torch.ones(4)
    guard = _guard(weights=weights)
    guard.after_update(3)
    guard.check_weights()  # finite: nothing to say
    guard.params[0].data[2] = math.inf
    guard.after_update(4)
    with pytest.raises(UserError, match="step 4: the update made some weights non-finite"):
        guard.check_weights()
    with pytest.raises(UserError, match="step 4: the update made some weights non-finite"):
        guard.allow_update(5, T(1.0), T(1.0))


def test_frozen_weights_are_not_checked():
    frozen = torch.nn.Parameter(T([math.nan]), requires_grad=False)
    guard = DivergenceGuard([frozen, torch.nn.Parameter(torch.ones(2))], "stop")
    guard.after_update(1)
    guard.check_weights()
