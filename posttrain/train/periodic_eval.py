"""The evaluation a recipe's `eval:` section asks for, as a callable the loop runs at eval steps
on the main process: the same engine as `posttrain eval`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from posttrain.config.recipe import EvalConfig
from posttrain.errors import UserError


def exact_match_task(data: str, answer: str = "final_number", max_new_tokens: int = 32) -> dict:
    """A generation task on prompt/reference rows, scored by exact match of the extracted answer."""
    return {
        "name": "exact_match",
        "kind": "generation",
        "data": data,
        "format": "prompt",
        "extract": "final_number" if answer == "final_number" else "text",
        "max_new_tokens": max_new_tokens,
    }


def generation_eval(cfg: EvalConfig, tokenizer, seed: int = 0) -> Callable | None:
    tasks: list = list(cfg.tasks)
    if cfg.task == "exact_match":
        if not Path(cfg.data).exists():
            raise UserError(f"{cfg.data}: no such file or directory (eval.data)")
        tasks.insert(0, exact_match_task(cfg.data, cfg.answer, cfg.max_new_tokens))
    if not tasks:
        return None
    from posttrain.eval import evaluate_tasks

    def run(model) -> dict[str, float]:
        metrics = evaluate_tasks(model, tokenizer, tasks, cfg.limit, cfg.batch_size, seed)
        return {("exact_match" if k == "exact_match/exact_match" else k): v for k, v in metrics.items()}

    return run
