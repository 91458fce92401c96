"""Sandboxed execution of untrusted programs (model output): one module used by every executing
eval task (eval/tasks/code.py, eval/tasks/swe_patch.py) and by the RL code reward
(rewards/code.py). runner.py says what the sandbox does and what it records."""

from posttrain.sandbox.runner import (
    Limits,
    Result,
    run_command,
    run_python,
    sandbox_python,
    scrubbed_env,
)

__all__ = ["Limits", "Result", "run_command", "run_python", "sandbox_python", "scrubbed_env"]
