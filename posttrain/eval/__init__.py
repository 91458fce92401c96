"""Evaluation: one engine for every task kind (eval/engine.py), `posttrain eval` (eval/cli.py).

    from posttrain.eval import evaluate_tasks
    evaluate_tasks(model, tokenizer, ["arithmetic", "countdown"], limit=50)  # {"arithmetic/exact_match": ...}

The engine is imported on first use, so building the CLI parser (eval/cli.py) stays fast.
"""

__all__ = ["TaskResult", "evaluate_tasks", "run_task", "run_tasks"]


def __getattr__(name: str):
    if name in __all__:
        from posttrain.eval import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'posttrain.eval' has no attribute {name!r}")
