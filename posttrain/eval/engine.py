"""The evaluation engine: tasks in, samples and metrics out, through any Backend.

    results = run_tasks(backend, ["arithmetic", "my_task.yaml"], limit=100, seed=0)
    metrics = evaluate_tasks(model, tokenizer, ["arithmetic"], limit=50)   # in-process, from training

Each task's documents are loaded (tasks/documents.py), its kind's runner turns them into batched
backend requests and scored samples (tasks/<kind>.py), and metrics.py summarises the samples.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from posttrain.errors import UserError
from posttrain.eval.metrics import Metric, summarise
from posttrain.eval.sample import Sample
from posttrain.eval.tasks import KIND_MODULES
from posttrain.eval.tasks.builtin import resolve_task
from posttrain.eval.tasks.context import TaskContext
from posttrain.eval.tasks.documents import load_documents
from posttrain.generation.backend import Backend, HFBackend
from posttrain.model.inference import has_own_chat_template


@dataclass
class TaskResult:
    task: Any  # the resolved TaskConfig
    samples: list[Sample]
    metrics: dict[str, dict]  # name -> {value, stderr, aggregate, higher_is_better}
    seconds: float
    curve: dict[str, list] = field(default_factory=dict)  # with --samples: the metrics over k
    notes: dict[str, Any] = field(default_factory=dict)  # what a kind reports beside metrics (sandbox isolation)

    @property
    def name(self) -> str:
        return self.task.name

    def values(self) -> dict[str, float]:
        return {name: entry["value"] for name, entry in self.metrics.items()}


def task_metrics(task) -> list[Metric]:
    return KIND_MODULES[task.kind].metrics(task)


def run_task(
    task, backend: Backend, limit: int | None = None, seed: int = 0, judge: Any = None, voting: Any = None
) -> TaskResult:
    """Evaluate one resolved task configuration; `voting` (voting.VotingOptions): N samples per
    item, scored as pass@k, maj@k and best-of-k, or with `adaptive` up to N by self-evaluation."""
    start = time.perf_counter()
    # a kind may make its own documents (an agent environment's generated tasks)
    docs, pool = getattr(KIND_MODULES[task.kind], "documents", load_documents)(task, limit)
    ctx = TaskContext(backend, seed, judge)
    if voting is None:
        module = KIND_MODULES[task.kind]
        samples = module.run(task, docs, pool, ctx)
        metrics = summarise(task_metrics(task), samples, seed)
        notes = module.notes(task) if hasattr(module, "notes") else {}
        return TaskResult(task, samples, metrics, time.perf_counter() - start, notes=notes)
    if voting.adaptive is not None:
        from posttrain.eval import adaptive

        samples = adaptive.run(task, docs, pool, ctx, voting)
        return TaskResult(
            task, samples, summarise(adaptive.metrics(voting), samples, seed), time.perf_counter() - start
        )
    from posttrain.eval import voting as voting_module

    samples = voting_module.run(task, docs, pool, ctx, voting)
    metrics = summarise(voting_module.metrics(voting), samples, seed)
    curve = voting_module.curve({name: entry["value"] for name, entry in metrics.items()}, voting)
    return TaskResult(task, samples, metrics, time.perf_counter() - start, curve)


def resolve_tasks(
    specs: Sequence[Any], overrides: dict[str, list[str]] | None = None, data: dict[str, str] | None = None
) -> list:
    """Task configurations for names, YAML paths, dicts or configs; `overrides` and `data` are keyed
    by the name the task was asked for (or by its configured name)."""
    overrides, data = overrides or {}, data or {}
    tasks = []
    for spec in specs:
        key = spec if isinstance(spec, str) else getattr(spec, "name", None) or spec.get("name")
        tasks.append(resolve_task(spec, overrides.get(key, []), data.get(key)))
        check = getattr(KIND_MODULES[tasks[-1].kind], "check", None)
        if check is not None:  # e.g. a task's own files (a taxonomy) read before any model time
            check(tasks[-1])
    names = [t.name for t in tasks]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(f"two tasks are named {', '.join(duplicates)}; give each task a distinct `name`")
    return tasks


def run_tasks(
    backend: Backend,
    specs: Sequence[Any],
    limit: int | None = None,
    seed: int = 0,
    overrides: dict[str, list[str]] | None = None,
    data: dict[str, str] | None = None,
    judge: Any = None,
    voting: Any = None,
) -> list[TaskResult]:
    """Resolve every task first (a typo fails before any model time is spent), then run each."""
    tasks = resolve_tasks(specs, overrides, data)
    return [run_task(task, backend, limit, seed, judge, voting) for task in tasks]


def evaluate_tasks(
    model,
    tokenizer,
    task_names_or_configs: Sequence[Any],
    limit: int | None = None,
    batch_size: int = 16,
    seed: int = 0,
    judge: Any = None,
) -> dict[str, float]:
    """In-process evaluation of an already loaded model (the training loop's periodic eval):
    {"task/metric": value}, flat so it goes straight to the metrics log. The model's train/eval
    mode is restored by the backend after each call."""
    backend = HFBackend(
        model,
        tokenizer,
        batch_size=batch_size,
        seed=seed,
        is_chat=has_own_chat_template(tokenizer),
        show_progress=False,
    )
    results = run_tasks(backend, task_names_or_configs, limit, seed, judge=judge)
    return {f"{r.name}/{metric}": value for r in results for metric, value in r.values().items()}
