"""Finding an environment by name: a built-in one (grid, calculator), `module:Class`, or an
http(s):// environment server (http_env.py)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from posttrain.errors import UserError


def builtin_environments() -> dict[str, type]:
    from posttrain.agents.calculator import CalculatorEnv
    from posttrain.agents.grid import GridEnv

    return {"grid": GridEnv, "calculator": CalculatorEnv}


def environment_factory(spec: str, options: dict[str, Any] | None = None) -> Callable[[], Any]:
    """A function making a fresh environment per episode, from a built-in name, `module:Class`
    (any class with reset/step, built with `options` as keyword arguments) or an http(s) URL of an
    environment server (http_env.py)."""
    options = dict(options or {})
    if spec.startswith(("http://", "https://")):
        from posttrain.agents.http_env import HTTPEnvironment

        return lambda: HTTPEnvironment(spec, **options)
    cls = builtin_environments().get(spec) or _import_class(spec)
    try:
        cls(**options)  # a wrong option is one line now, not one failure per episode later
    except TypeError as err:
        raise UserError(f"environment '{spec}': bad options {sorted(options)}: {err}") from None
    return lambda: cls(**options)


def environment_class(spec: str) -> type | None:
    """The class behind a built-in name or entry point (None for an HTTP server)."""
    if spec.startswith(("http://", "https://")):
        return None
    return builtin_environments().get(spec) or _import_class(spec)


def _import_class(spec: str) -> type:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UserError(
            f"environment '{spec}': not a built-in one ({', '.join(builtin_environments())}), "
            "a module:Class entry point, nor an http(s):// environment server"
        )
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise UserError(f"environment '{spec}': cannot import: {err}") from None
    if not (callable(getattr(cls, "reset", None)) and callable(getattr(cls, "step", None))):
        raise UserError(f"environment '{spec}': {attr} has no reset and step methods")
    return cls
