"""Wires policy log-probs and precomputed reference log-probs to a registered preference loss, for
the training loop. The loss unit is a pair: the loop divides the summed pair losses by the number
of pairs in the whole optimizer step."""

from __future__ import annotations

import dataclasses

import torch

from posttrain.config import PreferenceSection
from posttrain.objectives.preference import (PairLogps, PreferenceConfig, UnpairedLogps, kto,
                                            kto_reference_point, summed_statistics)
from posttrain.objectives.registry import LossSpec


def preference_config(section: PreferenceSection) -> PreferenceConfig:
    """The objective's hyperparameters from the recipe's `preference:` section."""
    fields = {f.name for f in dataclasses.fields(PreferenceConfig)}
    return PreferenceConfig(**{k: v for k, v in section.model_dump().items() if k in fields})


def sequence_logps(token_logps: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of response-token log-probs, response token count) per row."""
    counts = (labels[:, 1:] != -100).sum(-1).to(token_logps.dtype)
    return token_logps.sum(-1), counts


class PairwiseObjective:
    def __init__(self, spec: LossSpec, cfg: PreferenceConfig):
        self.spec, self.cfg = spec, cfg

    def weight(self, mb: dict[str, torch.Tensor]) -> int:
        return int(mb["num_pairs"])

    def loss(self, policy, mb: dict[str, torch.Tensor]):
        n = int(mb["num_pairs"])
        token_logps = policy(mb["input_ids"], mb["labels"], mb.get("position_ids"), mb.get("attention_mask"))
        logps, lengths = sequence_logps(token_logps, mb["labels"])
        blocks = 3 if self.spec.needs_reference_sample else 2
        sample, extra = slice(2 * n, 3 * n), slice(blocks * n, None)
        batch = PairLogps(
            policy_chosen_logps=logps[:n], policy_rejected_logps=logps[n : 2 * n],
            ref_chosen_logps=mb.get("ref_chosen"), ref_rejected_logps=mb.get("ref_rejected"),
            chosen_lengths=lengths[:n], rejected_lengths=lengths[n : 2 * n],
            policy_ref_sample_logps=logps[sample] if self.spec.needs_reference_sample else None,
            ref_ref_sample_logps=mb.get("ref_ref_sample"),
            old_chosen_logps=mb.get("ref_chosen"), old_rejected_logps=mb.get("ref_rejected"),
            chosen_scores=mb.get("chosen_score"), rejected_scores=mb.get("rejected_score"),
            extra_rejected_logps=logps[extra], extra_rejected_lengths=lengths[extra],
            extra_rejected_pair=mb.get("extra_rejected_pair"))
        out = self.spec.fn(batch, self.cfg)
        return out.losses.sum(), summed_statistics(out)


class UnpairedObjective:
    """KTO for the loop: rows are the examples' own completions, then their mismatched partners
    (another example's completion), whose log-ratio mean estimates z0 within the micro-batch.
    The loss unit is an example."""

    def __init__(self, cfg: PreferenceConfig):
        self.cfg = cfg

    def weight(self, mb: dict[str, torch.Tensor]) -> int:
        return int(mb["num_examples"])

    def loss(self, policy, mb: dict[str, torch.Tensor]):
        n = mb["input_ids"].shape[0] // 2
        logps, _ = sequence_logps(policy(mb["input_ids"], mb["labels"]), mb["labels"])
        z0 = kto_reference_point(logps[n:], mb["ref_mismatched"])
        batch = UnpairedLogps(policy_logps=logps[:n], ref_logps=mb["ref_matched"],
                              desirable=mb["desirable"], kl_reference_point=z0)
        out = kto(batch, self.cfg)
        return out.losses.sum(), summed_statistics(out)
