"""Tiny generated repositories for the swe_patch task: each a buggy snapshot, an issue, hidden
unittest tests, and the fix as a unified diff and as SWE-RL search/replace edits.
examples/code_eval/swe_tiny.jsonl is this module's output (test_swe_patch checks they agree):
    python -m tests.unit.eval.swe_repos > examples/code_eval/swe_tiny.jsonl
"""

from __future__ import annotations

import difflib
import json

# (instance id, issue, buggy files, {path: (buggy text, fixed text)} for the changed file, tests)
_CASES = [
    (
        "calc-divide",
        "calc.ops.divide(7, 2) returns 3; it should return the exact quotient 3.5.",
        {
            "calc/__init__.py": "",
            "calc/ops.py": "def add(a, b):\n    return a + b\n\n\ndef divide(a, b):\n    return a // b\n",
        },
        ("calc/ops.py", "    return a // b\n", "    return a / b\n"),
        {
            "test_divide.py": "import unittest\nfrom calc.ops import divide\n\n\nclass T(unittest.TestCase):\n"
            "    def test_exact(self):\n        self.assertEqual(divide(7, 2), 3.5)\n"
            "        self.assertEqual(divide(-1, 4), -0.25)\n"
        },
    ),
    (
        "text-vowels",
        "count_vowels('AEIOU') returns 0: capital vowels are not counted.",
        {"textutil.py": "VOWELS = 'aeiou'\n\n\ndef count_vowels(s):\n    return sum(c in VOWELS for c in s)\n"},
        ("textutil.py", "    return sum(c in VOWELS for c in s)\n", "    return sum(c.lower() in VOWELS for c in s)\n"),
        {
            "test_vowels.py": "import unittest\nfrom textutil import count_vowels\n\n\nclass T(unittest.TestCase):\n"
            "    def test_case(self):\n        self.assertEqual(count_vowels('AEIOU xyz a'), 6)\n"
        },
    ),
    (
        "stack-pop",
        "Stack.pop() on an empty stack returns None; it should raise IndexError.",
        {
            "stack.py": "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, x):\n"
            "        self.items.append(x)\n\n    def pop(self):\n        if not self.items:\n"
            "            return None\n        return self.items.pop()\n"
        },
        ("stack.py", "            return None\n", "            raise IndexError('pop from an empty stack')\n"),
        {
            "test_stack.py": "import unittest\nfrom stack import Stack\n\n\nclass T(unittest.TestCase):\n"
            "    def test_empty(self):\n        with self.assertRaises(IndexError):\n            Stack().pop()\n"
            "    def test_order(self):\n        s = Stack()\n        s.push(1)\n        s.push(2)\n"
            "        self.assertEqual(s.pop(), 2)\n"
        },
    ),
    (
        "shop-discount",
        "Cart.total() with a 0.25 discount charges a quarter of the price instead of 75%.",
        {
            "shop/__init__.py": "",
            "shop/cart.py": "class Cart:\n    def __init__(self, discount=0.0):\n"
            "        self.prices, self.discount = [], discount\n\n"
            "    def add(self, price):\n        self.prices.append(price)\n\n"
            "    def total(self):\n        return sum(self.prices) * self.discount if self.discount "
            "else sum(self.prices)\n",
        },
        (
            "shop/cart.py",
            "        return sum(self.prices) * self.discount if self.discount else sum(self.prices)\n",
            "        return sum(self.prices) * (1 - self.discount)\n",
        ),
        {
            "test_cart.py": "import unittest\nfrom shop.cart import Cart\n\n\nclass T(unittest.TestCase):\n"
            "    def test_discount(self):\n        c = Cart(0.25)\n        c.add(100)\n        self.assertEqual(c.total(), 75)\n"
            "    def test_plain(self):\n        c = Cart()\n        c.add(10)\n        self.assertEqual(c.total(), 10)\n"
        },
    ),
]


def _diff(path: str, old: str, new: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{path}", f"b/{path}"))


def instances() -> list[dict]:
    rows = []
    for instance_id, issue, repo, (path, bug, fix), tests in _CASES:
        fixed = repo[path].replace(bug, fix)
        edits = f"```python\n### {path}\n<<<<<<< SEARCH\n{bug.rstrip(chr(10))}\n=======\n{fix.rstrip(chr(10))}\n>>>>>>> REPLACE\n```"
        rows.append(
            {
                "instance_id": instance_id,
                "problem_statement": issue,
                "repo": repo,
                "tests": tests,
                "gold_patch": _diff(path, repo[path], fixed),
                "gold_edits": edits,
            }
        )
    return rows


if __name__ == "__main__":
    print("".join(json.dumps(row) + "\n" for row in instances()), end="")
