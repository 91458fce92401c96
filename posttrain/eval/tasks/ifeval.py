"""IFEval-style instruction following: generate, then run each instruction's check (ifeval_checks.py).

  prompt_level_strict_acc   share of prompts whose every instruction is followed
  inst_level_strict_acc     share of all instructions followed
  ..._loose_acc             the same, each check passing on any loose variant of the response
An instruction that cannot be checked here (see ifeval_checks.check) is left out of both levels
and counted in the sample's `unsupported` list.
"""

from __future__ import annotations

from posttrain.eval.metrics import Metric
from posttrain.eval.sample import Sample
from posttrain.eval.tasks.context import TaskContext, user_prompt
from posttrain.eval.tasks.generation import build_request
from posttrain.rewards.ifeval_checks import check, check_loose

METRICS = [
    Metric("prompt_level_strict_acc"),
    Metric("inst_level_strict_acc", "instruction_level_strict"),
    Metric("prompt_level_loose_acc"),
    Metric("inst_level_loose_acc", "instruction_level_loose"),
]


def metrics(task) -> list[Metric]:
    return METRICS


def score_response(doc: dict, response: str) -> dict:
    """Per-instruction results for one response: followed_strict, followed_loose, unsupported."""
    strict, loose, unsupported = [], [], []
    for instruction_id, kwargs in zip(doc["instruction_id_list"], doc["kwargs"]):
        ok_strict = check(instruction_id, response, kwargs)
        if ok_strict is None:
            unsupported.append(instruction_id)
            continue
        strict.append(ok_strict)
        loose.append(bool(check_loose(instruction_id, response, kwargs)))
    return {"followed_strict": strict, "followed_loose": loose, "unsupported": unsupported}


def run(task, docs: list[dict], pool: list[dict], ctx: TaskContext) -> list[Sample]:
    prompter = ctx.prompter(task)
    requests = [build_request(task, prompter.for_row(doc), user_prompt(task, doc)) for doc in docs]
    outputs = ctx.backend.generate(requests, desc=f"{task.name}: generate")
    samples = []
    for doc, request, output in zip(docs, requests, outputs):
        extra = score_response(doc, output)
        scores = {
            "prompt_level_strict_acc": float(all(extra["followed_strict"])),
            "prompt_level_loose_acc": float(all(extra["followed_loose"])),
        }
        samples.append(
            Sample(
                task.name,
                doc["_id"],
                prompter.decode(request.prompt),
                output,
                reference=list(doc["instruction_id_list"]),
                scores=scores,
                extra={**extra, "kwargs": doc["kwargs"]},
            )
        )
    return samples
