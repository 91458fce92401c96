"""YAML as recipes read it: safe loading (no tags that construct Python objects), no duplicated
keys, UTF-8 only, and every problem one line naming the file, line and column."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import yaml

from posttrain.errors import UserError


class _StrictLoader(yaml.SafeLoader):
    """Safe loading that refuses a key given twice in one mapping (YAML would keep the last one
    silently, so the setting a reader sees first is not the one that runs)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, typing.Hashable) and key in seen:
                raise UserError(f"line {line}: duplicated key '{key}' (first at line {seen[key]})")
            if isinstance(key, typing.Hashable):
                seen[key] = line
        return super().construct_mapping(node, deep)


def read_yaml(path: Path) -> Any:
    """A YAML file as data (an empty file is {}), every problem a one-line UserError naming it."""
    try:
        return yaml.load(path.read_bytes().decode("utf-8-sig"), Loader=_StrictLoader) or {}
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text (byte offset {err.start}: {err.reason})") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read: {err.strerror or err}") from None
    except UserError as err:
        raise UserError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not valid YAML: {yaml_problem(err)}") from None


def yaml_problem(err: yaml.YAMLError) -> str:
    """One line from a PyYAML error: its problem and where ("line 3, column 7")."""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    mark = getattr(err, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem
