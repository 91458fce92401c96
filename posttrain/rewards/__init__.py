"""Reward functions for RL: pure `(sample, completion) -> float`, selected by name, weighted.

`sample` is the prompt row as read from the data file (every field, so verifiers can read
`reference`, `numbers`, `instruction_id_list`, ...) plus `prompt` (the messages) and `reference`.
The total reward of a completion is sum_k weight_k * r_k; each term is logged on its own, and a
term marked as a verifier decides accuracy (its raw reward > 0).

Registered names (options are the functions' keyword arguments):
    math          final-answer match, numbers / fractions / \\boxed{}          (verifier)
    exact_match   the whole completion equals the reference (normalised text) (verifier)
    countdown     Countdown expression check                                  (verifier)
    ifeval        IFEval-style constraints; options: loose                    (verifier)
    similarity    SWE-RL: the patch of the search/replace edits vs the oracle's, difflib
                  ratio, -1 on bad format; options: mode (patch | block), pattern, tags   (verifier)
    format        regex format reward; options: pattern
    exploration   RLSP exploration (reasoning steps); options: max_steps, answer_marker
    code          the completion's code passes the row's tests in the sandbox (rewards/code.py);
                  options: timeout_s, memory_mb, workers, outcomes                  (verifier)
    reward_model  a reward model's score; options: path, attribute, dtype, batch_size
    judge         an LLM judge's 1-10 grade or win rate vs a baseline (rewards/judge.py);
                  options: model, mode, rubric, template, baseline_field, api_model, ...
    density_ratio CDR: log p_strong(y|x') - log p_weak(y|x) (rewards/density.py);
                  options: strong, weak, strong_system, exemplars, length_normalise, ...
A user function is named by dotted path, `package.module:function` or `package.module.function`
(a verifier unless the term says `verifier: false`). A function with a `batched` attribute,
`(samples, completions) -> list[float]`, is called once per batch of rollouts instead (the
reward model scores its batch in one forward).
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from math import nan  # not `import math`: that name is this package's math module

from posttrain.errors import UserError
from posttrain.rewards import math as math_rewards
from posttrain.rewards import swe_rl, tasks, text
from posttrain.rewards.bounded import DEFAULT_TIMEOUT_S, BoundedCalls, can_run_in_worker
from posttrain.rewards.code import code_reward
from posttrain.rewards.density import density_ratio
from posttrain.rewards.judge import judge_score
from posttrain.rewards.reward_model import reward_model_score
from posttrain.rewards.unscored import Unscored

RewardFn = Callable[[dict, str], float]

# name -> (function or factory, is a verifier, is a factory: called with the options once)
REGISTRY: dict[str, tuple[Callable, bool, bool]] = {
    "math": (math_rewards.math_answer, True, False),
    "exact_match": (text.exact_match, True, False),
    "countdown": (tasks.countdown, True, False),
    "ifeval": (tasks.ifeval, True, False),
    "similarity": (swe_rl.similarity, True, False),
    "format": (text.format_match, False, False),
    "exploration": (text.exploration, False, False),
    "reward_model": (reward_model_score, False, True),
    "judge": (judge_score, False, True),
    "density_ratio": (density_ratio, False, True),
    "code": (code_reward, True, True),
}
# The sample fields a scorer reads: `posttrain score` names a row lacking one before scoring.
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "math": ("reference",),
    "exact_match": ("reference",),
    "similarity": ("reference",),
    "countdown": ("numbers", "target"),
    "ifeval": ("instruction_id_list",),
}


def _bind(name: str, fn: Callable, options: dict, skip: int) -> Callable:
    """fn with `options` as keyword arguments; an option fn does not take is a UserError."""
    accepted = list(inspect.signature(fn).parameters)[skip:]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise UserError(f"reward '{name}': unknown option(s) {unknown}; it takes {accepted or 'none'}")
    return functools.partial(fn, **options) if options else fn


def import_function(path: str) -> Callable:
    """`module:function` or `module.function` -> the function."""
    module_name, sep, attr = path.partition(":") if ":" in path else path.rpartition(".")
    if not module_name or not attr:
        raise UserError(
            f"reward '{path}': not a registered name ({', '.join(REGISTRY)}) nor a dotted path module:function"
        )
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise UserError(f"reward '{path}': cannot import: {err}") from None
    if not callable(fn):
        raise UserError(f"reward '{path}': not a function")
    return fn


def reward_function(name: str, options: dict | None = None) -> tuple[RewardFn, bool]:
    """(reward function with its options bound, whether it is a verifier by default)."""
    options = options or {}
    if name in REGISTRY:
        fn, verifier, factory = REGISTRY[name]
        if factory:
            _bind(name, fn, options, 0)  # rejects unknown option names
            return fn(**options), verifier
        return _bind(name, fn, options, 2), verifier
    return _bind(name, import_function(name), options, 2), True


@dataclass
class RewardTerm:
    label: str
    weight: float
    fn: RewardFn
    verifier: bool


class RewardSet:
    """Weighted reward terms: raw score of each, their weighted total, and accuracy."""

    def __init__(self, terms: Sequence[RewardTerm], timeout_s: float = DEFAULT_TIMEOUT_S):
        if not terms:
            raise UserError("grpo.rewards is empty: name at least one reward function")
        labels = [t.label for t in terms]
        if len(set(labels)) != len(labels):
            raise UserError(f"grpo.rewards: two terms share a label in {labels}; set `label` on one")
        self.terms = list(terms)
        # Verifiers parse whatever the model wrote: each call is bounded in time (rewards/bounded.py)
        self.bounded = BoundedCalls(timeout_s)
        self.in_worker = {
            t.label: t.verifier and not getattr(t.fn, "batched", None) and can_run_in_worker(t.fn) for t in self.terms
        }

    @property
    def timeouts(self) -> int:
        """Verifier calls scored 0 because they did not return in time (over this set's life)."""
        return self.bounded.timeouts

    def score(self, sample: dict, completion: str) -> dict[str, float]:
        return self.score_all([sample], [completion])[0]

    def score_all(
        self, samples: Sequence[dict], completions: Sequence[str], unscored: list[dict[str, str]] | None = None
    ) -> list[dict[str, float]]:
        """Each completion's raw score per term; batched functions see all completions at once.
        A term's Unscored value becomes NaN; given a list, `unscored` gets per completion
        {label: reason} of those."""
        columns, reasons = {}, [{} for _ in completions]
        for t in self.terms:
            batched = getattr(t.fn, "batched", None)
            if self.in_worker[t.label]:
                values = list(self.bounded.map(t.fn, samples, completions, t.label))
            else:
                values = list(batched(samples, completions) if batched else map(t.fn, samples, completions))
            for i, v in enumerate(values):
                if isinstance(v, Unscored):
                    reasons[i][t.label] = v.reason
            columns[t.label] = [nan if isinstance(v, Unscored) else float(v) for v in values]
        if unscored is not None:
            unscored.extend(reasons)
        return [{label: column[i] for label, column in columns.items()} for i in range(len(completions))]

    def total(self, scores: dict[str, float]) -> float:
        return sum(t.weight * scores[t.label] for t in self.terms)

    def correct(self, scores: dict[str, float]) -> bool:
        """The first verifier term's raw reward > 0 (with no verifier: the total > 0)."""
        verifiers = [t for t in self.terms if t.verifier]
        return scores[verifiers[0].label] > 0 if verifiers else self.total(scores) > 0


def build_reward_set(configs: Sequence) -> RewardSet:
    """From the recipe's grpo.rewards entries (name, weight, label, verifier, options)."""
    terms = []
    for cfg in configs:
        fn, verifier = reward_function(cfg.name, dict(cfg.options))
        terms.append(
            RewardTerm(cfg.label or cfg.name, cfg.weight, fn, verifier if cfg.verifier is None else cfg.verifier)
        )
    return RewardSet(terms)
