"""What a task kind's runner gets: the backend, the seed, and (optionally) a judge to use instead
of the one the task configures (tests and in-process callers pass one)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from posttrain.eval.prompting import fill, target_text, task_examples, with_cot
from posttrain.generation.backend import Backend
from posttrain.generation.prompter import Prompter


@dataclass
class TaskContext:
    backend: Backend
    seed: int = 0
    judge: Any = None

    def prompter(self, task) -> Prompter:
        chat = self.backend.is_chat if task.chat is None else task.chat
        return Prompter(self.backend.tokenizer, chat, task.system)


def user_prompt(task, doc: dict, cot: bool = False) -> str:
    return with_cot(fill(task.template, doc, task.name), cot)


def few_shot_turns(task, doc: dict, pool: list[dict], cot: bool = False) -> list[tuple[str, str]]:
    """(question, answer) pairs for the task's few_shot examples of this document."""
    shots = task_examples(task, pool, doc)
    return [(user_prompt(task, shot, cot), target_text(shot, cot, task.target_template, task.name)) for shot in shots]
