"""Wires policy log-probs and precomputed reference log-probs to a registered preference loss, for
the training loop. The loss unit is a pair: the loop divides the summed pair losses by the number
of pairs in the whole optimizer step."""

from __future__ import annotations

import dataclasses

import torch

from posttrain.config.recipe import PreferenceSection
from posttrain.data.shared_prefix import SEGMENTS_PER_PAIR
from posttrain.data.unpaired import KL_
from posttrain.objectives.preference import (
    PairLogps,
    PreferenceConfig,
    UnpairedLogps,
    kto,
    kto_reference_point,
    summed_statistics,
)
from posttrain.objectives.registry import LossSpec


def preference_config(section: PreferenceSection) -> PreferenceConfig:
    """The objective's hyperparameters from the recipe's `preference:` section."""
    fields = {f.name for f in dataclasses.fields(PreferenceConfig)}
    return PreferenceConfig(**{k: v for k, v in section.model_dump().items() if k in fields})


def sequence_logps(token_logps: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of response-token log-probs, response token count) per row."""
    counts = (labels[:, 1:] != -100).sum(-1).to(token_logps.dtype)
    return token_logps.sum(-1), counts


def block_logps(policy, mb: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed response log-probs, response lengths) in block order (all chosen, all rejected
    [, all samples]) from either collated layout: rows block by block, or shared-prefix rows of
    one or several pairs with the responses as segments (data/shared_prefix.py). `policy` maps
    (input_ids, labels, **layout) to token log-probs [B, T]."""
    ids, labels = mb["input_ids"], mb["labels"]
    if "segment_ids" not in mb:  # LOGO's synthetic positions come with their own mask and ids
        return sequence_logps(
            policy(ids, labels, position_ids=mb.get("position_ids"), attention_mask=mb.get("attention_mask")), labels
        )
    segments = mb["segment_ids"]
    token_logps = policy(ids, labels, position_ids=mb["position_ids"], segment_ids=segments)
    pair, block = segments // SEGMENTS_PER_PAIR, segments % SEGMENTS_PER_PAIR
    scored = (segments >= 0) & (block > 0)  # response tokens (padding is -1)
    n, blocks = int(mb["num_pairs"]), int(block[scored].max())
    index = ((block - 1) * n + pair)[scored]  # block order: all chosen, all rejected[, samples]
    sums = token_logps.new_zeros(blocks * n).index_add(0, index, token_logps[scored])
    is_label = (labels[scored] != -100).to(token_logps.dtype)
    counts = token_logps.new_zeros(blocks * n).index_add(0, index, is_label)
    return sums, counts


class PairwiseObjective:
    def __init__(self, spec: LossSpec, cfg: PreferenceConfig):
        self.spec, self.cfg = spec, cfg

    def weight(self, mb: dict[str, torch.Tensor]) -> int:
        return int(mb["num_pairs"])

    def loss(self, policy, mb: dict[str, torch.Tensor]):
        n = int(mb["num_pairs"])
        logps, lengths = block_logps(policy, mb)
        blocks = 3 if self.spec.needs_reference_sample else 2
        sample, extra = slice(2 * n, 3 * n), slice(blocks * n, None)  # extra: LOGO's rejected 2..M
        batch = PairLogps(
            policy_chosen_logps=logps[:n],
            policy_rejected_logps=logps[n : 2 * n],
            ref_chosen_logps=mb.get("ref_chosen"),
            ref_rejected_logps=mb.get("ref_rejected"),
            chosen_lengths=lengths[:n],
            rejected_lengths=lengths[n : 2 * n],
            policy_ref_sample_logps=logps[sample] if self.spec.needs_reference_sample else None,
            ref_ref_sample_logps=mb.get("ref_ref_sample"),
            old_chosen_logps=mb.get("ref_chosen"),
            old_rejected_logps=mb.get("ref_rejected"),
            chosen_scores=mb.get("chosen_score"),
            rejected_scores=mb.get("rejected_score"),
            extra_rejected_logps=logps[extra],
            extra_rejected_lengths=lengths[extra],
            extra_rejected_pair=mb.get("extra_rejected_pair"),
        )
        out = self.spec.fn(batch, self.cfg)
        return out.losses.sum(), summed_statistics(out)


def example_logps(policy, mb: dict[str, torch.Tensor], mismatched: bool, device=None) -> torch.Tensor:
    """KTO's summed completion log-prob per example, of its own completion or of its mismatched
    partner, from either layout of data/unpaired.collate_unpaired: the row blocks [completions |
    partners], or each side packed with one segment per example (the partners under KL_ keys)."""
    n = int(mb["num_examples"])
    if "segment_ids" not in mb:
        rows = slice(n, None) if mismatched else slice(None, n)
        ids, labels = (mb[k][rows].to(device) for k in ("input_ids", "labels"))
        return sequence_logps(policy(ids, labels), labels)[0]
    prefix = KL_ if mismatched else ""
    side = {k: mb[prefix + k].to(device) for k in ("input_ids", "labels", "position_ids", "segment_ids")}
    return block_logps(policy, {**side, "num_pairs": mb["num_examples"]})[0]


class UnpairedObjective:
    """KTO for the loop. A micro-batch holds its examples' own completions and their mismatched
    partners (another example's completion, fixed at tokenisation), as rows or packed. z0 is estimated
    once per optimizer step, before its backward passes: the mean log-ratio of the mismatched rows
    of ALL the step's micro-batches on all processes, without gradient (TRL's whole-batch estimate,
    detached and averaged across processes), so it does not depend on how the step is split into
    micro-batches. The loss unit is an example."""

    def __init__(self, cfg: PreferenceConfig):
        self.cfg = cfg
        self.z0: torch.Tensor | None = None

    def weight(self, mb: dict[str, torch.Tensor]) -> int:
        return int(mb["num_examples"])

    @torch.no_grad()
    def prepare_step(self, policy, micro_batches: list[dict[str, torch.Tensor]], accelerator) -> None:
        """z0 for the coming loss calls, from every given micro-batch (one collective)."""
        device = accelerator.device
        sums = torch.zeros(2, device=device)
        for mb in micro_batches:
            n = int(mb["num_examples"])
            log_ratios = example_logps(policy, mb, mismatched=True, device=device) - mb["ref_mismatched"].to(device)
            sums += torch.stack([log_ratios.sum(), torch.tensor(float(n), device=device)])
        sums = accelerator.reduce(sums, "sum")
        self.z0 = kto_reference_point(sums[0], sums[1])

    def loss(self, policy, mb: dict[str, torch.Tensor]):
        if self.z0 is None:
            raise RuntimeError("UnpairedObjective.prepare_step must run before loss (it estimates z0)")
        batch = UnpairedLogps(
            policy_logps=example_logps(policy, mb, mismatched=False),
            ref_logps=mb["ref_matched"],
            desirable=mb["desirable"],
            kl_reference_point=self.z0,
        )
        out = kto(batch, self.cfg)
        return out.losses.sum(), summed_statistics(out)
