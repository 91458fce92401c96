"""Execution reward for RL (GRPO/PPO): 1.0 when the completion's code passes the row's tests in
the sandbox (posttrain/sandbox), else 0.0 - the same programs as the `code` eval task
(eval/code_programs.py), so a reward and an eval score agree on what passes.

A row gives its tests as MBPP does (`tests` or `test_list`: assert lines, optional
`test_setup_code`; the code is the answer's fenced block, else its [BEGIN]...[DONE] part, else the
whole answer) or as HumanEval does (`test` defining check(candidate), `entry_point`, optional
`code_prompt`: the function's signature and docstring the answer completes).
A row without tests scores 0.0 with outcome "no tests" (the run goes on). Completions of a batch
run `workers` at a time. options: timeout_s, memory_mb, workers, and outcomes (a JSONL path: one
line per scored completion with its status and reason, appended).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

from posttrain.errors import UserError
from posttrain.rewards.code_programs import (
    assert_program,
    humaneval_completion,
    humaneval_program,
    mbpp_code,
    run_programs,
)
from posttrain.sandbox import Limits


def program_for(sample: dict, completion: str) -> str | None:
    """The checking program of a completion; None when the row has no tests."""
    tests = sample.get("tests", sample.get("test_list"))
    if tests:
        if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
            raise UserError("reward 'code': 'tests' must be a list of assert lines")
        return assert_program(sample.get("test_setup_code") or "", mbpp_code(completion), tests)
    if sample.get("test") and sample.get("entry_point"):
        doc = {"prompt": sample.get("code_prompt") or "", "test": sample["test"], "entry_point": sample["entry_point"]}
        return humaneval_program(doc, humaneval_completion(completion))
    return None


def code_reward(timeout_s: float = 5.0, memory_mb: int = 512, workers: int = 4, outcomes: str | None = None):
    """The reward function (with `batched`: a batch's programs run in parallel sandboxes)."""
    limits = Limits(timeout_s=timeout_s, memory_mb=memory_mb)
    limits.check()
    lock = threading.Lock()

    def batched(samples: Sequence[dict], completions: Sequence[str]) -> list[float]:
        verdicts = run_programs([program_for(s, c) for s, c in zip(samples, completions)], limits, workers)
        if outcomes:
            with lock, Path(outcomes).open("a", encoding="utf-8") as f:
                f.writelines(
                    json.dumps({"task_id": sample.get("task_id"), "reward": float(verdict.passed), **verdict.to_json()})
                    + "\n"
                    for sample, verdict in zip(samples, verdicts)
                )
        return [float(v.passed) for v in verdicts]

    def reward(sample: dict, completion: str) -> float:
        return batched([sample], [completion])[0]

    reward.batched = batched
    return reward
