"""A tool-use calculator task: answer an arithmetic question, with a calculator tool on hand.

Actions (the first line that matches counts, case-insensitive):
    calc: <expression>    the tool evaluates + - * / and parentheses over numbers: "= <value>"
    answer: <number>      ends the episode; success when it equals the task's answer
Progress (AgentBoard): the task's subgoals are its intermediate values (e.g. a*b of a*b+c) and the
answer; each counts once seen as a tool result or as the answer.
"""

from __future__ import annotations

import ast
import operator
import random
import re
from typing import Any

from posttrain.agents.environment import Step

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_CALC = re.compile(r"calc\s*:\s*(.+)", re.IGNORECASE)
_ANSWER = re.compile(r"answer\s*:\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)
MAX_DIGITS = 30  # a tool result with more digits is refused: the tool never builds huge numbers


def evaluate(expression: str) -> float:
    """The value of + - * / over numbers and parentheses (ast, never eval); ValueError otherwise."""

    def value(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -value(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            result = _OPS[type(node.op)](value(node.left), value(node.right))
            if len(str(int(abs(result)))) > MAX_DIGITS:
                raise ValueError("result too large")
            return result
        raise ValueError("only numbers, + - * / and parentheses")

    try:
        return value(ast.parse(expression.strip(), mode="eval").body)
    except (SyntaxError, ZeroDivisionError) as err:
        raise ValueError(str(err) or type(err).__name__) from None


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


class CalculatorEnv:
    instructions = "Solve the question. Use the calculator with 'calc: <expression>', then reply 'answer: <number>'."

    @classmethod
    def tasks(cls, n: int, seed: int) -> list[dict[str, Any]]:
        """'What is a * b + c?' with a, b in 2..19 and c in 1..99, seeded."""
        rng = random.Random(seed)
        out = []
        for _ in range(n):
            a, b, c = rng.randint(2, 19), rng.randint(2, 19), rng.randint(1, 99)
            out.append({"question": f"What is {a} * {b} + {c}?", "answer": a * b + c, "subgoals": [a * b, a * b + c]})
        return out

    def reset(self, task: dict[str, Any]) -> str:
        if not isinstance(task.get("question"), str) or not isinstance(task.get("answer"), int | float):
            raise ValueError("a calculator task needs 'question' (text) and 'answer' (a number)")
        self.answer = float(task["answer"])
        self.subgoals = [float(v) for v in task.get("subgoals") or [task["answer"]]]
        self.reached: set[float] = set()
        return task["question"]

    def step(self, action: str) -> Step:
        for line in action.splitlines() or [""]:
            if found := _ANSWER.search(line):
                right = float(found.group(1)) == self.answer
                self._reach(float(found.group(1)))
                return Step("Correct." if right else "Wrong.", float(right), True, self._info(right))
            if found := _CALC.search(line):
                try:
                    result = evaluate(found.group(1))
                except ValueError as err:
                    return Step(f"Calculator error: {err}", 0.0, False, self._info(False))
                self._reach(result)
                return Step(f"= {_number(result)}", 0.0, False, self._info(False))
        return Step(
            "Invalid action: use 'calc: <expression>' or 'answer: <number>'.",
            0.0,
            False,
            {**self._info(False), "valid": False},
        )

    def _reach(self, value: float) -> None:
        self.reached |= {goal for goal in self.subgoals if abs(goal - value) < 1e-9}

    def _info(self, success: bool) -> dict[str, Any]:
        progress = 1.0 if success else len(self.reached) / len(self.subgoals)  # success reaches every subgoal
        return {"valid": True, "success": success, "progress": progress}
