"""Countdown: reach a target number with an arithmetic expression over given numbers, each used at
most once (+ - * / and parentheses). Every generated problem is solvable (the target is the value
of a random expression over the numbers), and answers are verified by walking the expression's
syntax tree with exact fractions: never eval(), no names, calls, powers or unary minus.
"""

from __future__ import annotations

import ast
import random
import re
from collections import Counter
from fractions import Fraction

MAX_EXPRESSION_CHARS = 200
_OPERATORS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}
_SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_CANDIDATE = re.compile(r"[\d\s+\-*/().]+")
_TAGGED = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)


class InvalidExpression(ValueError):
    pass


def evaluate(expression: str) -> tuple[Fraction, list[int]]:
    """(exact value, the integer literals it uses) of an expression of + - * / ( ) and integers."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise InvalidExpression("expression too long")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        raise InvalidExpression("not an arithmetic expression") from None
    used: list[int] = []
    return _value(tree.body, used), used


def _value(node: ast.AST, used: list[int]) -> Fraction:
    if isinstance(node, ast.Constant) and type(node.value) is int and node.value >= 0:
        used.append(node.value)
        return Fraction(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _value(node.left, used), _value(node.right, used)
        if isinstance(node.op, ast.Div) and right == 0:
            raise InvalidExpression("division by zero")
        return _OPERATORS[type(node.op)](left, right)
    raise InvalidExpression(f"{type(node).__name__} is not allowed")


def is_solution(expression: str | None, numbers: list[int], target: int) -> bool:
    """The expression is valid, uses each given number at most once, and equals the target."""
    if not expression:
        return False
    try:
        value, used = evaluate(expression)
    except InvalidExpression:
        return False
    return not Counter(used) - Counter(numbers) and value == target


def extract_expression(text: str) -> str | None:
    """The answer expression: inside <answer>...</answer> if present, else the last run of digits,
    operators and parentheses that holds an operator; a trailing '= 24' is dropped."""
    tagged = _TAGGED.findall(text)
    source = tagged[-1] if tagged else text
    source = "\n".join(line.split("=")[0] for line in source.splitlines())
    runs = [run.strip() for run in _CANDIDATE.findall(source)]
    runs = [run for run in runs if re.search(r"\d", run) and re.search(r"[+\-*/]", run)]
    return runs[-1].strip(". ") if runs else None


def _random_expression(rng: random.Random, numbers: list[int]) -> tuple[str, Fraction] | None:
    """Combine the numbers pairwise in random order; None if an operation would leave the
    positive integers (so every intermediate result is a whole number, as in the game)."""
    items = [(str(n), Fraction(n)) for n in numbers]
    while len(items) > 1:
        (ea, va), (eb, vb) = items.pop(rng.randrange(len(items))), items.pop(rng.randrange(len(items)))
        op = rng.choice(list(_OPERATORS))
        value = _OPERATORS[op](va, vb)  # vb > 0: every intermediate value is a positive integer
        if value <= 0 or value.denominator != 1:
            return None
        items.append((f"({ea} {_SYMBOLS[op]} {eb})", value))
    expression, value = items[0]
    return expression[1:-1] if expression.startswith("(") else expression, value


def problem(rng: random.Random, count: int | None = None, low: int = 1, high: int = 25) -> dict:
    """One solvable problem; `solution` is a valid answer (the few-shot target)."""
    count = count or rng.choice((3, 4))
    while True:
        numbers = [rng.randint(low, high) for _ in range(count)]
        subset = rng.sample(numbers, rng.randint(2, count))
        built = _random_expression(rng, subset)
        if built and 1 <= built[1] <= 999:
            return {"numbers": numbers, "target": int(built[1]), "solution": built[0]}


PROMPT = (
    "Using the numbers {numbers_text}, write an arithmetic expression that equals {target}. "
    "You may use +, -, *, / and parentheses, and each number at most once. "
    "Answer with the expression only."
)


def rows(n: int, seed: int) -> list[dict]:
    """n problems as eval documents: prompt, reference (the target), numbers, solution."""
    rng = random.Random(f"countdown:{seed}")
    out = []
    for _ in range(n):
        p = problem(rng)
        numbers_text = ", ".join(map(str, p["numbers"]))
        out.append(
            {
                **p,
                "numbers_text": numbers_text,
                "reference": str(p["target"]),
                "prompt": PROMPT.format(numbers_text=numbers_text, target=p["target"]),
            }
        )
    return out
