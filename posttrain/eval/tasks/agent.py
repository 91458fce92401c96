"""Agent tasks: each document is an environment task, played for `episodes` episodes over up to
`max_turns` turns (posttrain/agents). Metrics: success_rate, AgentBoard's progress_rate, mean
turns, invalid actions per episode, and env_errors (episodes whose environment raised: recorded
per document with the reason, never stopping the run).

Documents come from the data file (one task row each) or, for an environment with its own task
generator (the built-in grid and calculator), `size` tasks seeded by `data_seed`. With
`trajectories: PATH` the episodes are written as SFT conversations ({messages, reward, progress,
success}; `trajectories_keep: success` keeps only successful ones: rejection sampling).
"""

from __future__ import annotations

import json
from pathlib import Path

from posttrain.errors import UserError
from posttrain.eval.metrics import Metric
from posttrain.eval.sample import Sample
from posttrain.eval.tasks.context import TaskContext


def metrics(task) -> list[Metric]:
    return [
        Metric("success_rate"),
        Metric("progress_rate"),
        Metric("turns", higher_is_better=False),
        Metric("invalid_actions", higher_is_better=False),
        Metric("env_errors", aggregate="count", higher_is_better=False),
    ]


def check(task) -> None:
    """The environment resolves (and its options fit) before any model loads."""
    from posttrain.agents.registry import environment_factory

    environment_factory(task.environment, task.environment_options)


def documents(task, limit: int | None = None) -> tuple[list[dict], list[dict]]:
    from posttrain.agents.registry import environment_class
    from posttrain.eval.tasks.documents import load_documents

    cls = environment_class(task.environment)
    if task.data or not hasattr(cls, "tasks"):
        return load_documents(task, limit)
    docs = cls.tasks(task.size, task.data_seed)
    limit = limit if limit is not None else task.limit
    if limit is not None and limit < 1:
        raise UserError(f"limit must be >= 1, got {limit}")
    docs = [{**doc, "_id": i} for i, doc in enumerate(docs)][:limit]
    return docs, []


def run(task, docs: list[dict], pool: list[dict], ctx: TaskContext) -> list[Sample]:
    from posttrain.agents.registry import environment_factory
    from posttrain.agents.rollout import RolloutSettings, run_episodes, sft_rows

    if task.episodes > 1 and task.temperature <= 0:
        raise UserError(
            f"task '{task.name}': {task.episodes} episodes at temperature 0 are the same greedy "
            "episode; set temperature > 0"
        )
    prompter = ctx.prompter(task)
    settings = RolloutSettings(task.max_turns, task.max_new_tokens, task.temperature, tuple(task.stop), ctx.seed)
    tasks = [_environment_task(doc) for doc in docs for _ in range(task.episodes)]
    episodes = run_episodes(
        ctx.backend,
        prompter,
        environment_factory(task.environment, task.environment_options),
        tasks,
        settings,
        system=lambda row, env: _system(task, row),
        desc=task.name,
    )
    if task.trajectories:
        rows = sft_rows(episodes, successful_only=task.trajectories_keep == "success")
        _write_jsonl(Path(task.trajectories), rows)
    per_doc = [episodes[i * task.episodes : (i + 1) * task.episodes] for i in range(len(docs))]
    return [_sample(task, doc, mine) for doc, mine in zip(docs, per_doc)]


def _environment_task(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def _system(task, row: dict) -> str | None:
    """A row's own `system` column, else the task's system message, else (None) the environment's
    instructions."""
    if row.get("system") is not None:
        if not isinstance(row["system"], str):
            raise ValueError(f"the 'system' column must be text, got {type(row['system']).__name__}")
        return row["system"]
    return task.system


def _sample(task, doc: dict, episodes) -> Sample:
    n = len(episodes)
    errors = [e.error for e in episodes if e.error]
    first = episodes[0]
    transcript = "\n".join(f"{m['role']}: {m['content']}" for m in first.messages)
    scores = {
        "success_rate": sum(e.success for e in episodes) / n,
        "progress_rate": sum(e.progress for e in episodes) / n,
        "turns": sum(e.turns for e in episodes) / n,
        "invalid_actions": sum(e.invalid_actions for e in episodes) / n,
        "env_errors": float(len(errors)),
    }
    return Sample(
        task.name,
        doc["_id"],
        transcript,
        first.messages[-1]["content"] if first.messages else "",
        extracted=errors[0] if errors else None,
        scores=scores,
        extra={"episodes": [e.to_json() for e in episodes]},
    )


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    from posttrain.data.jobs import write_atomically

    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, "".join(json.dumps(row) + "\n" for row in rows))
