"""Rewards on the completion's text and form.

exact_match: 1.0 when the whole completion equals sample['reference'] after normalising case,
    surrounding whitespace/quotes and a final period (rewards/extract.py's canonical_text), else 0.0.
similarity (SWE-RL): in rewards/swe_rl.py.
format_match: 1.0 when the completion matches a regex (default: <think>...</think> then
    <answer>...</answer>, the R1/Countdown layout), else 0.0.
exploration (RLSP, Ye et al. 2025): a separately weighted reward for exploring, here the number
    of reasoning steps (non-empty lines before the answer), min(steps, max_steps) / max_steps.
    RLSP's own exploration reward is a length/steps bonus on the thinking part kept decoupled
    from the outcome verifier; give it a small weight next to the verifier term.
"""

from __future__ import annotations

import re

from posttrain.errors import UserError
from posttrain.rewards.extract import canonical_text

_THINK_ANSWER = r"^\s*<think>.*?</think>\s*<answer>.*?</answer>\s*$"


def _compile(pattern: str, reward: str) -> re.Pattern:
    try:
        return re.compile(pattern, re.DOTALL)
    except re.error as err:
        raise UserError(f"reward '{reward}': pattern {pattern!r} does not compile: {err}") from None


def exact_match(sample: dict, completion: str) -> float:
    return float(canonical_text(completion) == canonical_text(str(sample["reference"])))


def format_match(sample: dict, completion: str, pattern: str = _THINK_ANSWER) -> float:
    return float(bool(_compile(pattern, "format").search(completion)))


def exploration(sample: dict, completion: str, max_steps: int = 8, answer_marker: str = "<answer>") -> float:
    if max_steps < 1:
        raise UserError(f"reward 'exploration': max_steps must be >= 1, got {max_steps}")
    reasoning = completion.split(answer_marker)[0]
    steps = sum(1 for line in reasoning.splitlines() if line.strip())
    return min(steps, max_steps) / max_steps
