"""Hierarchical Prompting Taxonomy (Budagam et al., 2024): five prompting strategies of rising
cognitive demand, tried in order until one solves the sample.

  1 role prompting          a system message casting the model as `role`
  2 zero-shot CoT           the question plus "Let's think step by step."
  3 three-shot CoT          three worked examples (from the few-shot pool) before the question
  4 least-to-most           first ask for the sub-questions, then answer them in order
  5 generated knowledge     first ask for facts that help, then answer using them
A sample's HP-score is the number of the first level that solves it; when none does it scores
max(levels) + unsolved_penalty. The authors' code scores an unsolved sample 5 + the data set's
human-annotated HP-score (BoolQ 1.71, CommonsenseQA 2.52, IWSLT 1.92, SamSum 2.23); arbitrary
data has no such annotation, so the default penalty is 1 (unsolved = 6, one level past the last):
set unsolved_penalty to the annotated value to reproduce the paper's numbers. Lower is better.
Levels run in batches: level k generates only for the samples levels < k left unsolved.

What solves a sample (`metric`): exact_match or countdown (the extracted answer is right), or a
text metric with a `threshold` -- bleu or chrf (sacrebleu's sentence score, 0-100), rouge1, rouge2
or rougeL (F-measure, 0-1) -- reaching it, as the authors' code does for its translation (IWSLT,
BLEU >= threshold) and summarisation (SamSum, ROUGE) rows. The text scored is the whole answer
with `extract: text`, else what `extract` pulls out of it.
"""

from __future__ import annotations

from posttrain.errors import UserError
from posttrain.eval.metrics import Metric, sentence_score
from posttrain.eval.sample import Sample
from posttrain.eval.tasks.context import TaskContext, few_shot_turns, user_prompt
from posttrain.eval.tasks.generation import build_request, check_answer
from posttrain.generation.prompter import Prompter
from posttrain.rewards.extract import get_extractor

THRESHOLD_METRICS = ("bleu", "chrf", "rouge1", "rouge2", "rougeL")

LEVEL_NAMES = {1: "role", 2: "zero_shot_cot", 3: "three_shot_cot", 4: "least_to_most", 5: "generated_knowledge"}
METRICS = [Metric("hp_score", higher_is_better=False), Metric("solved")]
DECOMPOSE = (
    "{question}\n\nDo not solve this yet. Break the problem into the simpler sub-questions "
    "that lead to its answer, and list them."
)
SOLVE_PARTS = (
    "{question}\n\nSub-questions:\n{parts}\n\nAnswer the sub-questions one by one, then give the final answer."
)
KNOWLEDGE = "Write down facts and knowledge that help answer the question below. Do not answer it.\n\n{question}"
USE_KNOWLEDGE = "Knowledge:\n{knowledge}\n\nUsing this knowledge, answer the question.\n\n{question}"


def metrics(task) -> list[Metric]:
    return METRICS


def _first_stage(task, level: int, doc: dict, pool: list[dict], prompter: Prompter):
    """The request of a level's first (for 1-3, only) generation."""
    question = user_prompt(task, doc)
    if level == 1:
        role = Prompter(prompter.tokenizer, prompter.chat, f"You are {task.role}.")
        return build_request(task, role, question)
    if level == 2:
        return build_request(task, prompter, user_prompt(task, doc, cot=True))
    if level == 3:
        three = task.model_copy(update={"few_shot": 3})
        return build_request(
            task, prompter, user_prompt(task, doc, cot=True), few_shot_turns(three, doc, pool, cot=True)
        )
    template = DECOMPOSE if level == 4 else KNOWLEDGE
    return build_request(task, prompter, template.format(question=question))


def _second_stage(task, level: int, doc: dict, first_output: str, prompter: Prompter):
    question = user_prompt(task, doc)
    if level == 4:
        text = SOLVE_PARTS.format(question=question, parts=first_output.strip())
    else:
        text = USE_KNOWLEDGE.format(question=question, knowledge=first_output.strip())
    return build_request(task, prompter, text)


def _run_level(
    task, level: int, docs: list[dict], pool: list[dict], ctx: TaskContext, prompter: Prompter
) -> tuple[list[str], list[str]]:
    """(prompt text, final answer) per document at one level."""
    requests = [_first_stage(task, level, doc, pool, prompter) for doc in docs]
    outputs = ctx.backend.generate(requests, desc=f"{task.name}: level {level} ({LEVEL_NAMES[level]})")
    if level in (4, 5):
        requests = [_second_stage(task, level, doc, out, prompter) for doc, out in zip(docs, outputs)]
        outputs = ctx.backend.generate(requests, desc=f"{task.name}: level {level}, answer")
    return [prompter.decode(r.prompt) for r in requests], outputs


def run(task, docs: list[dict], pool: list[dict], ctx: TaskContext) -> list[Sample]:
    levels = sorted(set(task.levels))
    if not levels or not set(levels) <= set(LEVEL_NAMES):
        raise UserError(f"task '{task.name}': levels must be a non-empty subset of 1-5, got {task.levels}")
    prompter = ctx.prompter(task)
    unsolved = list(range(len(docs)))
    solved_at: dict[int, int] = {}
    tried: dict[int, dict] = {i: {} for i in range(len(docs))}
    for level in levels:
        if not unsolved:
            break
        prompts, outputs = _run_level(task, level, [docs[i] for i in unsolved], pool, ctx, prompter)
        still = []
        for i, prompt, output in zip(unsolved, prompts, outputs):
            extracted, correct, score = solves(task, docs[i], output)
            tried[i][level] = {"prompt": prompt, "output": output, "extracted": extracted, "score": score}
            if correct:
                solved_at[i] = level
            else:
                still.append(i)
        unsolved = still
    unsolved_score = max(levels) + task.unsolved_penalty
    return [_sample(task, doc, tried[i], solved_at.get(i), unsolved_score) for i, doc in enumerate(docs)]


def solves(task, doc: dict, output: str) -> tuple[str | None, bool, float | None]:
    """(extracted answer, solved?, the metric's score when it is a text metric)."""
    if task.metric not in THRESHOLD_METRICS:
        return (*check_answer(task, doc, output, task.metric), None)
    answer = output.strip() if task.extract == "text" else get_extractor(task.extract, task.regex)(output)
    score = sentence_score(task.metric, answer or "", str(doc.get("reference", "")))
    return answer, score >= task.threshold, score


def _sample(task, doc: dict, tried: dict, level: int | None, unsolved_score: float) -> Sample:
    last = tried[level if level is not None else max(tried)]
    return Sample(
        task.name,
        doc["_id"],
        last["prompt"],
        last["output"],
        reference=doc.get("reference"),
        extracted=last["extracted"],
        scores={"hp_score": float(level) if level is not None else unsolved_score, "solved": float(level is not None)},
        extra={
            "solved_at_level": level,
            "levels": {str(k): v["output"] for k, v in tried.items()},
            **({"level_scores": {str(k): v["score"] for k, v in tried.items()}} if task.threshold is not None else {}),
        },
    )
