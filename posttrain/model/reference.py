"""Reference-model log-probs, computed once before training instead of at every step.

The reference is the initial policy unless the recipe names another model. Computing its
log-probs for the whole data set up front (eval mode, no gradients) means no second copy of the
weights lives during training, with full fine-tuning or LoRA alike; the values are cached on
disk, keyed by the reference model and the tokenised data.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence

import torch
from tqdm.auto import tqdm

from posttrain.model.logprobs import token_logprobs
from posttrain.objectives.pairwise import block_logps


@torch.no_grad()
def precompute_reference_logps(
    model,
    units: Sequence,
    collate: Callable,
    names: Sequence[str],
    batch_size: int,
    device: torch.device,
    chunk_size: int = 256,
) -> None:
    """Fill unit.ref_logps[name] with the reference's response log-prob of each row block:
    `collate` stacks a group's rows block by block (e.g. all chosen, then all rejected) or lays
    each unit out as one shared-prefix row (objectives/pairwise.block_logps reads both), and
    names[k] names block k (blocks beyond the collated rows are skipped)."""
    was_training = model.training
    model.eval()  # dropout off: the reference is a fixed function
    try:
        for start in tqdm(range(0, len(units), batch_size), desc="reference log-probs", leave=False):
            group = units[start : start + batch_size]
            batch = collate(group)
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            logps, _ = block_logps(functools.partial(token_logprobs, model, chunk_size=chunk_size), batch)
            n = len(group)
            for block, name in enumerate(names[: logps.shape[0] // n]):
                for i, unit in enumerate(group):
                    unit.ref_logps[name] = float(logps[block * n + i])
    finally:
        model.train(was_training)


def units_fingerprint(units: Sequence, fields: Sequence[str], model_id: str) -> str:
    """What precomputed log-probs depend on: the reference's identity and every scored token."""
    digest = hashlib.sha256(model_id.encode())
    for unit in units:
        for ex in (getattr(unit, f) for f in fields):
            if ex is not None:
                digest.update(repr(ex.input_ids).encode())
                digest.update(repr(ex.labels).encode())
    return digest.hexdigest()[:24]
