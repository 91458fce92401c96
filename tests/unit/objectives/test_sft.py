import math

import torch

from posttrain.objectives.sft import NextTokenObjective, loss_mask, nll_sum


def test_nll_sum_by_hand():
    """Two rows; the first position is never predicted; IGNORE labels drop out.
    Loss tokens: row 0 positions 1, 2 (log-probs log 0.5, log 0.25), row 1 position 2 (log 0.1)."""
    labels = torch.tensor([[7, 3, 4], [7, -100, 5]])
    logps = torch.tensor([[-9.0, math.log(0.5), math.log(0.25)], [-9.0, -9.0, math.log(0.1)]])
    expected = -(math.log(0.5) + math.log(0.25) + math.log(0.1))
    assert math.isclose(float(nll_sum(logps, loss_mask(labels))), expected, rel_tol=1e-6)


def test_weight_counts_predicted_tokens():
    labels = torch.tensor([[-100, 3, 4], [7, -100, 5]])
    assert NextTokenObjective().weight({"labels": labels}) == 3
