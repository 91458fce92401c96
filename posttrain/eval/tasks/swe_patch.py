"""SWE-style patch evaluation: each row holds a repository snapshot (path -> text), a problem
statement and hidden tests (path -> text). The model answers with a unified diff or SWE-RL
search/replace edits (eval/patching.py applies either to the snapshot's text); the hidden tests
are then written into the patched tree and the test command runs in the sandbox.

Per row: resolved (the tests pass) or why not: "patch does not apply" (with the hunk or edit
that failed), "tests fail" (with the last line of the test output), "timeout", "memory",
"killed", "no tests ran" (the command found no test), or "no tests" (the row has none: counted by
`no_tests`, left out of the rates). Metrics: `resolved` (share of rows) and `applied` (share
whose answer applied). Real SWE-bench instances need each project's environment (its
dependencies installed): a row runs here only with what the sandbox's Python has.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from posttrain.eval.metrics import Metric
from posttrain.eval.patching import PatchError, apply_answer
from posttrain.eval.sample import Sample
from posttrain.eval.tasks.context import TaskContext, user_prompt
from posttrain.generation.backend import GenerationRequest
from posttrain.rewards.code_programs import isolation_summary
from posttrain.sandbox import Limits, run_command, sandbox_python

METRICS = [Metric("resolved"), Metric("applied"), Metric("no_tests", "count", higher_is_better=False)]
STATUS_OF_SANDBOX = {"error": "tests fail", "timeout": "timeout", "memory": "memory", "killed": "killed"}


def metrics(task) -> list[Metric]:
    return METRICS


def limits(task) -> Limits:
    return Limits(timeout_s=task.timeout_s, memory_mb=task.memory_mb)


def notes(task) -> dict:
    return {"sandbox": isolation_summary(limits(task))}


def run(task, docs: list[dict], pool: list[dict], ctx: TaskContext) -> list[Sample]:
    prompter = ctx.prompter(task)
    requests = [
        GenerationRequest(prompter.prompt(user_prompt(task, doc)), task.max_new_tokens, (), task.temperature)
        for doc in docs
    ]
    outputs = ctx.backend.generate(requests, desc=f"{task.name}: generate")
    with ThreadPoolExecutor(max_workers=task.workers) as workers:
        verdicts = list(workers.map(lambda pair: evaluate_answer(task, *pair), zip(docs, outputs)))
    return [
        Sample(
            task.name,
            doc["_id"],
            prompter.decode(request.prompt),
            output,
            reference=doc.get("instance_id"),
            extracted=verdict["status"],
            scores=_scores(verdict),
            extra=verdict,
        )
        for doc, request, output, verdict in zip(docs, requests, outputs, verdicts)
    ]


def evaluate_answer(task, doc: dict, answer: str) -> dict:
    """{"status", "reason", "answer_format", "test_output"} of one answer."""
    if not doc.get("tests"):
        return {"status": "no tests", "reason": "the row has no hidden tests", "answer_format": None}
    try:
        patched, answer_format = apply_answer(doc["repo"], answer)
    except PatchError as err:
        return {"status": "patch does not apply", "reason": str(err), "answer_format": None}
    argv = list(doc.get("test_command") or task.test_command)
    if argv[0] == "python":
        argv[0] = sandbox_python()
    result = run_command(argv, limits(task), {**patched, **doc["tests"]})
    output = result.stdout + result.stderr
    if result.ok and "Ran 0 tests" in output:
        status, reason = "no tests ran", "the test command ran no test"
    elif result.ok:
        status, reason = "resolved", ""
    else:
        status, reason = STATUS_OF_SANDBOX.get(result.status, result.status), result.reason()
    return {"status": status, "reason": reason, "answer_format": answer_format, "test_output": output[-2000:]}


def _scores(verdict: dict) -> dict[str, float]:
    if verdict["status"] == "no tests":
        return {"no_tests": 1.0}
    return {
        "resolved": float(verdict["status"] == "resolved"),
        "applied": float(verdict["status"] != "patch does not apply"),
        "no_tests": 0.0,
    }
