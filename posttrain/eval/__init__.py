"""Evaluation: one engine for every task kind (eval/engine.py), `posttrain eval` (eval/cli.py).

    from posttrain.eval import evaluate_tasks
    evaluate_tasks(model, tokenizer, ["arithmetic", "countdown"], limit=50)  # {"arithmetic/exact_match": ...}
"""

from posttrain.eval.engine import TaskResult, evaluate_tasks, run_task, run_tasks

__all__ = ["TaskResult", "evaluate_tasks", "run_task", "run_tasks"]
