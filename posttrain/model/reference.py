"""Reference-model log-probs, computed once before training instead of at every step.

The reference is the initial policy unless the recipe names another model. Computing its
log-probs for the whole data set up front (eval mode, no gradients) means no second copy of the
weights lives during training, with full fine-tuning or LoRA alike; the values are cached on
disk, keyed by the reference model and the tokenised data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from posttrain.data.preference import PairExample, collate_pairs
from posttrain.model.logprobs import token_logprobs
from posttrain.objectives.pairwise import sequence_logps


@torch.no_grad()
def precompute_reference_logps(model, pairs: Sequence[PairExample], pad_id: int, batch_size: int,
                               device: torch.device, chunk_size: int = 1024) -> None:
    """Fill pair.ref_logps with logp_ref of chosen, rejected (and the reference sample)."""
    was_training = model.training
    model.eval()  # dropout off: the reference is a fixed function
    try:
        for start in tqdm(range(0, len(pairs), batch_size), desc="reference log-probs", leave=False):
            group = pairs[start : start + batch_size]
            batch = collate_pairs(group, pad_id)
            ids, labels = batch["input_ids"].to(device), batch["labels"].to(device)
            logps, _ = sequence_logps(token_logprobs(model, ids, labels, chunk_size=chunk_size), labels)
            n = len(group)
            for i, pair in enumerate(group):
                pair.ref_logps["chosen"] = float(logps[i])
                pair.ref_logps["rejected"] = float(logps[n + i])
                if pair.ref_sample is not None:
                    pair.ref_logps["ref_sample"] = float(logps[2 * n + i])
    finally:
        model.train(was_training)


def pairs_fingerprint(pairs: Sequence[PairExample], model_id: str) -> str:
    digest = hashlib.sha256(model_id.encode())
    for p in pairs:
        for ex in (p.chosen, p.rejected, p.ref_sample):
            if ex is not None:
                digest.update(repr(ex.input_ids).encode())
                digest.update(repr(ex.labels).encode())
    return digest.hexdigest()[:24]
