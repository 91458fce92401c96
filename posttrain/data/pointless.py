"""Runs that are valid but cannot learn what they are meant to: one warning each, not an error (a
smoke test or a deliberate ablation may mean it), given once per run before any training step.

Each check returns the warning it logged, or None, so a test can assert on it directly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

log = logging.getLogger(__name__)

# Rewards that compare the completion with sample["reference"]: without one they are always 0.
REFERENCE_REWARDS = ("math", "exact_match", "similarity")


def _warn(message: str) -> str:
    log.warning(message)
    return message


def identical_pairs(path: str, pairs: Iterable[tuple[object, object]]) -> str | None:
    """Every (chosen, rejected) pair of a file identical: a pairwise loss has zero gradient on each."""
    pairs = list(pairs)
    if pairs and all(chosen == rejected for chosen, rejected in pairs):
        return _warn(
            f"{path}: every pair has chosen == rejected, so the pairwise loss cannot tell "
            "them apart and nothing is learnt from this file"
        )
    return None


def one_sided_labels(desirable: Sequence[bool]) -> str | None:
    """KTO data whose examples are all desirable or all undesirable."""
    if desirable and len(set(desirable)) == 1:
        side = "desirable" if desirable[0] else "undesirable"
        return _warn(
            f"every KTO training example is {side} (label {str(desirable[0]).lower()}): "
            "KTO then only pushes one way against its reference point"
        )
    return None


def rewards_without_reference(reward_names: Sequence[str], samples: Sequence[dict]) -> str | None:
    """A reward that needs sample['reference'] when no prompt row has one: it is 0 for every completion."""
    needing = [name for name in reward_names if name in REFERENCE_REWARDS]
    if needing and not any(sample.get("reference") is not None for sample in samples):
        return _warn(
            f"reward {', '.join(needing)} compares with a reference answer, but no prompt row "
            "has one (fields reference, answer or solution): its reward is 0 for every completion"
        )
    return None


def zero_advantages(group_size: int, advantage: str) -> str | None:
    """One completion per prompt: its group-centred advantage is 0, so the policy gradient is 0."""
    if group_size == 1 and advantage in ("group_std", "none"):
        return _warn(
            f"grpo.group_size 1 with grpo.advantage {advantage}: every advantage is 0 (each "
            "completion is its own group's mean), so only the KL term trains; use group_size >= 2"
        )
    return None


def unusable_prompts(path: str, problems: Sequence[tuple[int, str]], total: int) -> str | None:
    """Evaluation prompts that are empty or not text: the model is asked nothing there."""
    if not problems:
        return None
    row, problem = problems[0]
    return _warn(
        f"{path}: {len(problems)} of {total} prompts are empty or not text (first: row {row}: "
        f"{problem}); they are evaluated as they are"
    )
