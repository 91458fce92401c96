"""Wires reward-model scores to a registered reward loss (objectives/reward.py), for the loop.

Pairwise (bradley_terry, bt_margin, scaled_bt): a micro-batch holds n chosen rows then n rejected
rows (or one shared-prefix row per pair, scored at each response's end); one forward gives scores
s [2n, A], r_w = s[:n, a], r_l = s[n:, a] with a the scoring output.
The loss unit is a pair, so the logged loss, accuracy [r_w > r_l] and margin r_w - r_l are means
over the pairs of the step.

Regression: the loss unit is one annotated attribute score, so the logged loss is the masked MSE
sum_ia mask_ia (pred_ia - target_ia)^2 / sum_ia mask_ia of the step and absolute_error its MAE.
"""

from __future__ import annotations

import torch

from posttrain.objectives.registry import RewardLossSpec
from posttrain.objectives.reward import AttributeScores, ScorePairs, regression

MicroBatch = dict[str, torch.Tensor]


class PairwiseRewardObjective:
    def __init__(self, spec: RewardLossSpec, score_index: int = 0):
        self.spec, self.score_index = spec, score_index

    def weight(self, mb: MicroBatch) -> int:
        return int(mb["num_pairs"])

    def loss(self, policy, mb: MicroBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        layout = {k: mb[k] for k in ("position_ids", "segment_ids", "score_at") if k in mb}
        scores = policy(mb["input_ids"], **layout)[:, self.score_index]
        n = scores.shape[0] // 2
        batch = ScorePairs(
            chosen_scores=scores[:n],
            rejected_scores=scores[n:],
            margins=mb.get("margins"),
            strengths=mb.get("strengths"),
        )
        out = self.spec.fn(batch)
        return out.losses.sum(), {name: values.sum() for name, values in out.extra.items()}


class RegressionRewardObjective:
    def weight(self, mb: MicroBatch) -> int:
        return int(mb["attribute_mask"].sum())

    def loss(self, policy, mb: MicroBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        predicted = policy(mb["input_ids"])
        out = regression(AttributeScores(predicted=predicted, target=mb["targets"], mask=mb["attribute_mask"]))
        return out.losses.sum(), {"absolute_error": out.extra["absolute_error"].sum()}
