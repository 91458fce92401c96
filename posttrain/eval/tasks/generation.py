"""Generation tasks: prompt (zero-/few-shot, direct or chain of thought), generate, extract, score.

Metrics a task can ask for:
  exact_match   extracted answer == reference (both put in canonical form by extract.py)
  countdown     the extracted expression is a valid Countdown solution (countdown.py)
  rouge         ROUGE-1/2/L F-measure per sample (rouge-score), averaged
  bleu, chrf    corpus BLEU and chrF (sacrebleu) of the whole completion against the reference
"""

from __future__ import annotations

from posttrain.errors import UserError
from posttrain.eval.metrics import Metric, rouge_scores
from posttrain.eval.model_metrics.scores import MODEL_METRICS, add_model_scores, metric_names
from posttrain.eval.sample import Sample
from posttrain.eval.tasks.context import TaskContext, few_shot_turns, user_prompt
from posttrain.generation.backend import GenerationRequest
from posttrain.rewards.countdown import is_solution
from posttrain.rewards.extract import canonical, get_extractor

ROUGE_KINDS = ("rouge1", "rouge2", "rougeL")


def metrics(task) -> list[Metric]:
    out: list[Metric] = []
    for name in task.metrics:
        if name == "rouge":
            out += [Metric(kind) for kind in ROUGE_KINDS]
        elif name in ("bleu", "chrf"):
            out.append(Metric(name, aggregate=name))
        elif name in MODEL_METRICS:
            known = {m.name for m in out}  # judge_failures once for faithfulness and answer_relevance
            out += [
                Metric(metric, aggregate, higher_is_better=aggregate != "count")
                for metric, aggregate in metric_names(name)
                if metric not in known
            ]
        else:
            out.append(Metric(name))
    return out


def build_request(task, prompter, user: str, shots: list[tuple[str, str]] = ()) -> GenerationRequest:
    """Every generating kind's request: its task's length limit, stop strings and temperature."""
    messages = prompter.messages(user, shots)  # kept for a chat-only server (backend openai)
    return GenerationRequest(
        prompter.encode(messages),
        task.max_new_tokens,
        tuple(getattr(task, "stop", ())),
        getattr(task, "temperature", 0.0),
        messages=tuple(messages),
    )


def run(task, docs: list[dict], pool: list[dict], ctx: TaskContext) -> list[Sample]:
    prompter = ctx.prompter(task)
    cot = task.strategy == "cot"
    requests = [
        build_request(task, prompter.for_row(doc), user_prompt(task, doc, cot), few_shot_turns(task, doc, pool, cot))
        for doc in docs
    ]
    outputs = ctx.backend.generate(requests, desc=f"{task.name}: generate")
    samples = [
        score_sample(task, doc, prompter.decode(request.prompt), output)
        for doc, request, output in zip(docs, requests, outputs)
    ]
    if any(name in MODEL_METRICS for name in task.metrics):
        add_model_scores(task, docs, samples, ctx)
    return samples


def check_answer(task, doc: dict, output: str, rule: str = "exact_match") -> tuple[str | None, bool]:
    """(extracted answer, correct?) under the task's extraction and the exact_match or countdown rule."""
    extracted = get_extractor(task.extract, task.regex)(output)
    if rule == "countdown":
        if "numbers" not in doc or "target" not in doc:
            raise UserError(f"task '{task.name}': the countdown metric needs documents with numbers and target")
        return extracted, is_solution(extracted, doc["numbers"], int(doc["target"]))
    reference = str(doc.get("reference", ""))
    return extracted, extracted is not None and extracted == canonical(task.extract, reference)


def score_sample(task, doc: dict, prompt: str, output: str) -> Sample:
    scores: dict[str, float] = {}
    extracted = None
    for rule in task.metrics:
        if rule in ("exact_match", "countdown"):
            extracted, correct = check_answer(task, doc, output, rule)
            scores[rule] = float(correct)
        elif rule == "rouge":
            scores.update(rouge_scores(output.strip(), str(doc["reference"]), ROUGE_KINDS))
    return Sample(
        task.name, doc["_id"], prompt, output, reference=doc.get("reference"), extracted=extracted, scores=scores
    )
