"""Llama Guard as an eval task (Inan et al. 2023, "Llama Guard: LLM-based Input-Output Safeguard
for Human-AI Conversations"): classify labelled user prompts (classify: prompt) or agent
responses (classify: response) against a category taxonomy.

Each document's conversation goes into the guard prompt (guard.guard_prompt, with the task's
`taxonomy` file or Llama Guard 3's S1-S14). The score is P(unsafe) = the full-vocabulary softmax
probability of the first token of "unsafe" at the first answer position (guard.unsafe_probabilities);
P(unsafe) > `threshold` flags the document. With `generate` the guard also writes its verdict
greedily, and the violated categories are parsed from its second line.

Metrics: `auprc` (average precision of P(unsafe) against the labels, threshold-free), `f1` (of the
unsafe class at the threshold), `acc`, `category_acc` (the parsed category set equals the labelled
one, over unsafe documents that carry categories) and `unparsed` (answers naming neither label).
"""

from __future__ import annotations

from posttrain.errors import UserError
from posttrain.eval.guard import (
    LLAMA_GUARD_3_CATEGORIES,
    UNSAFE,
    guard_prompt,
    parse_verdict,
    read_taxonomy,
    unsafe_probabilities,
)
from posttrain.eval.metrics import Metric
from posttrain.eval.sample import Sample
from posttrain.eval.tasks.context import TaskContext
from posttrain.eval.tasks.generation import build_request

METRICS = [Metric("auprc", "auprc"), Metric("f1", "f1_unsafe"), Metric("acc")]
GENERATED = [Metric("category_acc"), Metric("unparsed", "count", higher_is_better=False)]


def metrics(task) -> list[Metric]:
    return METRICS + (GENERATED if task.generate else [])


def taxonomy(task) -> list[tuple[str, str]]:
    return read_taxonomy(task.taxonomy) if task.taxonomy else list(LLAMA_GUARD_3_CATEGORIES)


def check(task) -> None:
    """Read the taxonomy file when the task is resolved, so a malformed one fails before the model loads."""
    taxonomy(task)


def conversation(doc: dict, classify: str, task_name: str = "llama_guard") -> list[dict[str, str]]:
    """The user turn, and the agent's response when the response is what is classified."""
    turns = [{"role": "user", "content": doc["prompt"]}]
    if classify == "prompt":
        return turns
    if doc.get("response") is None:
        raise UserError(
            f"task '{task_name}': document {doc.get('_id')} has no 'response' to classify "
            "(classify: response needs prompt and response fields)"
        )
    return turns + [{"role": "assistant", "content": doc["response"]}]


def run(task, docs: list[dict], pool: list[dict], ctx: TaskContext) -> list[Sample]:
    categories = taxonomy(task)
    codes = [code for code, _ in categories]
    prompter = ctx.prompter(task)
    texts = [guard_prompt(conversation(doc, task.classify, task.name), categories) for doc in docs]
    p_unsafe = unsafe_probabilities(ctx.backend, texts, prompter=prompter)
    outputs = [""] * len(docs)
    if task.generate:
        requests = [build_request(task, prompter, text) for text in texts]
        outputs = ctx.backend.generate(requests, desc=f"{task.name}: verdicts")
    return [
        _sample(task, doc, prompter.decode(prompter.prompt(text)), output, p, codes)
        for doc, text, output, p in zip(docs, texts, outputs, p_unsafe)
    ]


def _sample(task, doc: dict, prompt: str, output: str, p: float, codes: list[str]) -> Sample:
    decision = UNSAFE if p > task.threshold else "safe"
    scores = {"acc": float(decision == doc["label"])}
    extra: dict = {"p_unsafe": p}
    if task.generate:
        verdict, found = parse_verdict(output, codes)
        scores["unparsed"] = float(verdict is None)
        labelled = doc["label"] == UNSAFE and doc["categories"]
        scores["category_acc"] = float(set(found) == set(doc["categories"])) if labelled else float("nan")
        extra.update(verdict=None if verdict is None else (UNSAFE if verdict else "safe"), categories=found)
    return Sample(
        task.name, doc["_id"], prompt, output, reference=doc["label"], extracted=decision, scores=scores, extra=extra
    )
