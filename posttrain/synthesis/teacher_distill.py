"""Teacher distillation data (BioInstruct, KD-from-frontier, NesyCD, ATS style): self-instruct
expansion of seed tasks by a teacher, a ROUGE-L novelty filter, then the teacher's answers
(optionally with their rationale) as SFT rows for a student.

    posttrain synth teacher-distill --set seed_tasks=seeds.jsonl --set teacher.model=M \
        --set teacher.base_url=URL --set rounds=20 --set rationale=true --out OUT

1. Expansion (Self-Instruct, Wang et al. 2023; BioInstruct uses it from 80 seed tasks): each round
   sends `requests_per_round` prompts; each shows `in_context` (m) tasks sampled from the pool
   (seeds plus the tasks accepted so far) and asks for one new task (TASK_PROMPT). A candidate is
   kept when it is not empty, has min_words..max_words words (Self-Instruct: 3..150), and its
   ROUGE-L F1 against every task of the pool is below `rouge_threshold` (Self-Instruct: 0.7).
   Each round is one chunk of a resumable job (OUT/tasks.jsonl records every candidate with its
   ROUGE-L maximum and the decision); a resumed run rebuilds the pool from the finished rounds.
2. Answers: the teacher answers each new task (and the seeds with answer_seeds). With
   `rationale` (distilling step-by-step / NesyCD / ATS: the student learns the teacher's reasoning),
   RATIONALE_PROMPT asks for the reasoning and then a final line 'Answer: ...'; answers without it
   are removed. The SFT row's user turn is the task alone, the assistant turn the teacher's text.
Seed file: .jsonl/.json/.csv/.parquet rows with `instruction` (+ optional `input`, alpaca) or
`prompt` (a string). Outputs: OUT/tasks.jsonl, OUT/answers.jsonl, OUT/sft.jsonl, OUT/manifest.json.
The prompts are this project's own wording. rouge-score tokenises ASCII words only (as
Self-Instruct's filter), so tasks in other scripts are not novelty-filtered.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Annotated

from pydantic import Field

from posttrain.config.base import NonNegative, Positive, Ratio, Section
from posttrain.data.jobs import CHUNK_DIGITS, BatchOutput, file_sha256, parts_dir
from posttrain.errors import UserError
from posttrain.generation.chat_model import ChatModel
from posttrain.generation.sample import input_identity
from posttrain.generation.source import ModelSpec, model_identity
from posttrain.synthesis.pipeline import (
    finish,
    job_failed,
    read_jsonl,
    removal_counts,
    run_model_job,
    sft_row,
    write_jsonl,
)

NAME = "teacher-distill"
HELP = "self-instruct expansion of seed tasks (ROUGE-L novelty filter) + teacher answers/rationales"

TASK_PROMPT = (
    "Here are some tasks that users give an AI assistant:\n\n{examples}\n\nWrite one new task that "
    "differs from all of them in topic or kind, is clear and self-contained, and can be answered in "
    "text. Write only the new task."
)
RATIONALE_PROMPT = (
    "{task}\n\nSolve this task. First explain your reasoning step by step, then give the result "
    "on a final line that starts with 'Answer:'."
)
_LABEL = re.compile(r"^\s*(?:new task|task(?: \d+)?|instruction)\s*[:.]\s*", re.I)


class Recipe(Section):
    out: str  # output directory
    seed_tasks: str | None = None  # the seed task file
    teacher: ModelSpec = ModelSpec()
    rounds: Positive = 10
    requests_per_round: Positive = 8
    in_context: Positive = 8  # m: tasks shown per request
    rouge_threshold: Ratio = 0.7  # keep a candidate whose max ROUGE-L F1 against the pool is below this
    min_words: NonNegative = 3
    max_words: Annotated[int, Field(gt=0)] = 150
    rationale: bool = False
    answer_seeds: bool = False
    seed: NonNegative = 0
    batch_size: Positive = 16  # tasks answered per job chunk


def run(recipe: Recipe) -> int:
    out = Path(recipe.out)
    seeds = read_seed_tasks(recipe.seed_tasks)
    teacher = ChatModel(recipe.teacher, "teacher")
    base = {
        "method": NAME,
        "teacher": model_identity(recipe.teacher),
        "seed": recipe.seed,
        "seed_tasks": input_identity(recipe.seed_tasks, len(seeds)),
    }
    expansion = {
        **base,
        "step": "expand",
        **recipe.model_dump(
            include={"rounds", "requests_per_round", "in_context", "rouge_threshold", "min_words", "max_words"}
        ),
    }
    tasks_path = out / "tasks.jsonl"
    expander = Expander(recipe, teacher, seeds, tasks_path)
    if job_failed(run_model_job(list(range(recipe.rounds)), expander, tasks_path, 1, expansion, "expand"), tasks_path):
        return 1  # later rounds drew on an incomplete pool only until the rerun redoes the failed ones
    failed = 0
    candidates = read_jsonl(tasks_path)
    new_tasks = [c["task"] for c in candidates if not c["removed_by"]]
    todo = [{"index": i, "task": t, "origin": "generated"} for i, t in enumerate(new_tasks)]
    if recipe.answer_seeds:
        todo += [{"index": len(todo) + i, "task": t, "origin": "seed"} for i, t in enumerate(seeds)]
    answers, answers_path = [], out / "answers.jsonl"
    if todo:
        answering = {**base, "step": "answer", "tasks_sha256": file_sha256(tasks_path), "rationale": recipe.rationale}
        manifest = run_model_job(
            todo,
            lambda batch, b: answer_tasks(teacher, batch, recipe.rationale, recipe.seed + b),
            answers_path,
            recipe.batch_size,
            answering,
            "answer",
        )
        failed += job_failed(manifest, answers_path)
        answers = read_jsonl(answers_path)
    sft = [sft_row(a["task"], a["answer"], origin=a["origin"]) for a in answers if not a["removed_by"]]
    write_jsonl(out / "sft.jsonl", sft)
    removed = {f"expand.{k}": v for k, v in removal_counts(candidates).items()}
    removed.update({f"answer.{k}": v for k, v in removal_counts(answers).items()})
    counts = {
        "seed_tasks": len(seeds),
        "candidates": len(candidates),
        "new_tasks": len(new_tasks),
        "answered": len(answers),
        "failed": failed,
        "sft_rows": len(sft),
        "teacher_calls": teacher.calls,
    }
    files = {"tasks": str(tasks_path), "answers": str(answers_path), "sft": str(out / "sft.jsonl")}
    code = finish(out, NAME, base, counts, files, removed, len(sft), "SFT rows")
    return 1 if failed else code


def read_seed_tasks(path: str | None) -> list[str]:
    from posttrain.data.sources import read_rows

    if not path:
        raise UserError("recipe: seed_tasks: missing (a file of seed tasks: rows with 'instruction' or 'prompt')")
    if not Path(path).exists():
        raise UserError(f"{path}: seed task file not found")
    tasks = []
    for number, row in read_rows(path):
        text = row.get("instruction") if row.get("instruction") is not None else row.get("prompt")
        if not isinstance(text, str) or not text.strip():
            raise UserError(
                f"{path}: row {number}: field 'instruction': missing or not a non-empty string "
                "(a seed task is 'instruction' (+ 'input') or 'prompt')"
            )
        extra = row.get("input")
        tasks.append(f"{text.strip()}\n\n{extra.strip()}" if isinstance(extra, str) and extra.strip() else text.strip())
    if not tasks:
        raise UserError(f"{path}: no seed tasks in the file (it is empty)")
    return tasks


def task_prompt(examples: list[str]) -> str:
    return TASK_PROMPT.format(examples="\n".join(f"Task {i + 1}: {t}" for i, t in enumerate(examples)))


def clean_task(text: str) -> str:
    return _LABEL.sub("", text.strip(), count=1).strip()


class NoveltyFilter:
    """Self-Instruct's filters: length in words, then ROUGE-L F1 against every task seen so far."""

    def __init__(self, threshold: float, min_words: int, max_words: int):
        from rouge_score import rouge_scorer

        self.scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
        self.threshold, self.min_words, self.max_words = threshold, min_words, max_words

    def judge(self, task: str, pool: list[str]) -> dict:
        if not task:
            return {"removed_by": "empty", "rouge_l_max": None, "most_similar": None}
        words = len(task.split())
        if not self.min_words <= words <= self.max_words:
            return {"removed_by": "length", "rouge_l_max": None, "most_similar": None}
        scores = [self.scorer.score(other, task)["rougeL"].fmeasure for other in pool]
        best = max(range(len(scores)), key=scores.__getitem__) if scores else None
        top = scores[best] if best is not None else 0.0
        return {
            "removed_by": "rouge_l" if top >= self.threshold else None,
            "rouge_l_max": round(top, 4),
            "most_similar": pool[best] if best is not None else None,
        }


class Expander:
    """process_batch of the expansion job: one round per batch, against the pool of the seeds and
    every task accepted in earlier rounds (read back from finished chunks after a resume)."""

    def __init__(self, recipe: Recipe, teacher: ChatModel, seeds: list[str], out: Path):
        self.recipe, self.teacher, self.seeds, self.out = recipe, teacher, seeds, out
        self.accepted: dict[int, list[str]] = {}
        self.filter = NoveltyFilter(recipe.rouge_threshold, recipe.min_words, recipe.max_words)

    def pool(self, before: int) -> list[str]:
        for r in range(before):
            if r not in self.accepted:
                chunk = parts_dir(self.out) / f"chunk-{r:0{CHUNK_DIGITS}d}.jsonl"
                rows = read_jsonl(chunk) if chunk.is_file() else []
                self.accepted[r] = [row["task"] for row in rows if not row["removed_by"]]
        return self.seeds + [t for r in range(before) for t in self.accepted[r]]

    def __call__(self, batch: list[int], index: int) -> BatchOutput:
        (r,) = batch
        pool = self.pool(r)
        rng = random.Random(self.recipe.seed * 1_000_003 + r)
        m = min(self.recipe.in_context, len(pool))
        shown = [rng.sample(pool, m) for _ in range(self.recipe.requests_per_round)]
        answers = self.teacher.ask([task_prompt(examples) for examples in shown], seed=self.recipe.seed + r)
        failed = [a for a in answers if not isinstance(a, list)]
        if failed:
            return BatchOutput([], [{"item": f"round {r}", "error": failed[0].error, "failed_requests": len(failed)}])
        rows, kept = [], []
        for request, answer in enumerate(answers):
            task = clean_task(answer[0])
            decision = self.filter.judge(task, pool + kept)
            if not decision["removed_by"]:
                kept.append(task)
            rows.append({"round": r, "request": request, "task": task, **decision})
        self.accepted[r] = kept
        return BatchOutput(rows)


def answer_tasks(teacher: ChatModel, batch: list[dict], rationale: bool, seed: int) -> BatchOutput:
    prompts = [RATIONALE_PROMPT.format(task=item["task"]) if rationale else item["task"] for item in batch]
    rows, failures = [], []
    for item, answer in zip(batch, teacher.ask(prompts, seed=seed)):
        if not isinstance(answer, list):
            failures.append({"item": item["index"], "error": answer.error})
            continue
        text = answer[0].strip()
        removed = (
            "empty_answer"
            if not text
            else "no_final_answer"
            if rationale and not re.search(r"^\s*answer\s*:", text, re.I | re.M)
            else None
        )
        rows.append({**item, "answer": text, "rationale": rationale, "removed_by": removed})
    return BatchOutput(rows, failures)
