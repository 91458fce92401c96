"""Classification: the predicted label is the label text the model finds most likely after the
prompt (method: loglikelihood, summed log-prob of each label's tokens), or the label a generated
answer starts with (method: generation; none found counts as its own wrong class "<none>").
Metrics: accuracy, macro and weighted F1, and Matthews correlation (multi-class, Gorodkin).
"""

from __future__ import annotations

from posttrain.errors import UserError
from posttrain.eval.metrics import Metric
from posttrain.eval.sample import Sample
from posttrain.eval.tasks.context import TaskContext, few_shot_turns, user_prompt
from posttrain.eval.tasks.generation import build_request
from posttrain.generation.backend import LoglikelihoodRequest
from posttrain.rewards.extract import canonical_text

NO_LABEL = "<none>"
METRICS = [Metric("acc"), Metric("f1_macro", "f1_macro"), Metric("f1_weighted", "f1_weighted"), Metric("mcc", "mcc")]


def metrics(task) -> list[Metric]:
    return METRICS


def reference_label(task, doc: dict) -> str:
    """The document's label as one of task.labels; an integer label indexes task.labels (datasets
    like SST-2 store 0/1 for ["negative", "positive"])."""
    label = doc["label"]
    if str(label) in task.labels:
        return str(label)
    if isinstance(label, bool) or not str(label).lstrip("-").isdigit() or not 0 <= int(label) < len(task.labels):
        raise UserError(
            f"task '{task.name}': document {doc['_id']} has label {label!r}, which is not one of labels {task.labels}"
        )
    return task.labels[int(label)]


def run(task, docs: list[dict], pool: list[dict], ctx: TaskContext) -> list[Sample]:
    if not task.labels:
        raise UserError(f"task '{task.name}': give the label set, e.g. --set {task.name}.labels=[negative,positive]")
    shot_docs = [{**d, "reference": reference_label(task, d)} for d in pool] if task.few_shot else pool
    task = task.model_copy(update={"target_template": task.target_template or "{reference}"})
    docs = [{**doc, "reference": reference_label(task, doc)} for doc in docs]
    prompter = ctx.prompter(task)
    contexts = [(prompter.for_row(doc), user_prompt(task, doc), few_shot_turns(task, doc, shot_docs)) for doc in docs]
    predict = _by_generation if task.method == "generation" else _by_loglikelihood
    prompts, outputs, predictions = predict(task, contexts, ctx)
    return [
        Sample(
            task.name,
            doc["_id"],
            prompter.decode(prompt),
            output,
            reference=doc["reference"],
            extracted=prediction,
            scores={"acc": float(prediction == doc["reference"])},
        )
        for doc, prompt, output, prediction in zip(docs, prompts, outputs, predictions)
    ]


def _by_generation(task, contexts, ctx: TaskContext) -> tuple[list, list[str], list[str]]:
    requests = [build_request(task, row_prompter, user, shots) for row_prompter, user, shots in contexts]
    outputs = ctx.backend.generate(requests, desc=f"{task.name}: generate")
    return [r.prompt for r in requests], outputs, [_label_in(task.labels, output) for output in outputs]


def _by_loglikelihood(task, contexts, ctx: TaskContext) -> tuple[list, list[str], list[str]]:
    prompts = [row_prompter.prompt(user, shots) for row_prompter, user, shots in contexts]
    requests = [
        LoglikelihoodRequest(p, row_prompter.continuation_ids(label))
        for p, (row_prompter, _, _) in zip(prompts, contexts)
        for label in task.labels
    ]
    results = ctx.backend.loglikelihood(requests, desc=f"{task.name}: loglikelihood")
    k = len(task.labels)
    predictions = [_best(task.labels, [r.logprob for r in results[i * k : (i + 1) * k]]) for i in range(len(prompts))]
    return prompts, list(predictions), predictions


def _best(labels: list[str], logprobs: list[float]) -> str:
    return labels[max(range(len(labels)), key=logprobs.__getitem__)]


def _label_in(labels: list[str], output: str) -> str:
    """The label the answer starts with (the longest, if several do)."""
    text = canonical_text(output)
    starts = [label for label in labels if text.startswith(canonical_text(label))]
    return max(starts, key=len) if starts else NO_LABEL
