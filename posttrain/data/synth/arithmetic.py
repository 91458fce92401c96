"""The quickstart's synthetic task: two-digit addition and subtraction word problems, with a verifier.

Answers are short, formulaic column-method workings ending in "47 + 38 = 85. The answer is 85." so
that a tiny model trained for a few CPU minutes can learn them; the final number is machine-checkable,
which also makes the task usable for verifier-based RL. Everything comes from a seeded random.Random.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

NAMES = ["Tom", "Anna", "Sam", "Lily", "Ben", "Mia", "Max", "Zoe"]
ITEMS = ["apples", "books", "coins", "stickers", "marbles", "cards", "pencils", "shells"]

# Question phrasings; {n} is a name, {it} an item, {a}/{b} the operands.
ADD_PHRASES = [
    "What is {a} + {b}?",
    "Compute {a} plus {b}.",
    "{n} has {a} {it} and gets {b} more. How many {it} does {n} have now?",
    "A box holds {a} {it}. Someone adds {b} {it}. How many {it} are in the box?",
]
SUB_PHRASES = [
    "What is {a} - {b}?",
    "Compute {a} minus {b}.",
    "{n} has {a} {it} and gives away {b}. How many {it} does {n} have left?",
    "A box holds {a} {it}. Someone takes out {b} {it}. How many {it} are in the box?",
]

ProblemKey = tuple[int, str, int]  # (a, op, b): identifies a problem regardless of phrasing


@dataclass(frozen=True)
class Problem:
    a: int
    op: str  # "+" or "-"
    b: int
    question: str

    @property
    def key(self) -> ProblemKey:
        return (self.a, self.op, self.b)

    @property
    def value(self) -> int:
        return self.a + self.b if self.op == "+" else self.a - self.b

    @property
    def worked_answer(self) -> str:
        """Column method, ones then tens, then the result: "7 + 8 = 15, carry 1. 4 + 3 + 1 = 8.
        47 + 38 = 85. The answer is 85." Each step is a one-digit fact a tiny model learns in a few
        hundred steps. In a check (default tiny model, batch 32, lr 3e-3) the bare "47 + 38 = 85.
        The answer is 85." reached 9% held-out exact match after 1000 steps; this form 75% after 700."""
        steps = _addition_steps(self.a, self.b) if self.op == "+" else _subtraction_steps(self.a, self.b)
        return f"{steps} {self.a} {self.op} {self.b} = {self.value}. The answer is {self.value}."


def _addition_steps(a: int, b: int) -> str:
    ones = a % 10 + b % 10
    carry = int(ones >= 10)
    ones_step = f"{a % 10} + {b % 10} = {ones}" + (", carry 1." if carry else ".")
    tens_step = f"{a // 10} + {b // 10}" + (" + 1" if carry else "") + f" = {a // 10 + b // 10 + carry}."
    return f"{ones_step} {tens_step}"


def _subtraction_steps(a: int, b: int) -> str:
    borrow = int(a % 10 < b % 10)
    top = a % 10 + 10 * borrow
    ones_step = f"{top} - {b % 10} = {top - b % 10}" + (", borrow 1." if borrow else ".")
    tens_step = f"{a // 10} - {b // 10}" + (" - 1" if borrow else "") + f" = {a // 10 - b // 10 - borrow}."
    return f"{ones_step} {tens_step}"


def _draw(rng: random.Random) -> Problem:
    """One random problem; subtraction keeps a >= b so every answer is a non-negative integer."""
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    op = rng.choice("+-")
    if op == "-" and a < b:
        a, b = b, a
    phrase = rng.choice(ADD_PHRASES if op == "+" else SUB_PHRASES)
    question = phrase.format(a=a, b=b, n=rng.choice(NAMES), it=rng.choice(ITEMS))
    return Problem(a, op, b, question)


def problem(rng: random.Random) -> tuple[str, str, int]:
    """(question, worked answer, final value) of one random problem."""
    p = _draw(rng)
    return p.question, p.worked_answer, p.value


def _problems(n: int, seed: int, exclude: set | None = None, unique: bool = False) -> list[Problem]:
    """n problems whose keys are not in exclude (and pairwise distinct when unique)."""
    rng, out, seen = random.Random(seed), [], set(exclude or ())
    while len(out) < n:
        p = _draw(rng)
        if p.key in seen:
            continue
        if unique:
            seen.add(p.key)
        out.append(p)
    return out


def _chat(p: Problem) -> dict:
    return {"messages": [{"role": "user", "content": p.question}, {"role": "assistant", "content": p.worked_answer}]}


def sft_rows(n: int, seed: int, exclude: set | None = None) -> list[dict]:
    """n chat rows {"messages": [user, assistant]}; exclude holds (a, op, b) keys to leave out."""
    return [_chat(p) for p in _problems(n, seed, exclude)]


def eval_rows(n: int, seed: int) -> list[dict]:
    """n distinct problems as {"prompt": question, "reference": final number as a string}."""
    return [{"prompt": p.question, "reference": str(p.value)} for p in _problems(n, seed, unique=True)]


def rl_prompt_rows(n: int, seed: int, exclude: set | None = None) -> list[dict]:
    """n distinct problems {"prompt", "reference"} whose keys are not in exclude: prompts for RL."""
    return [{"prompt": p.question, "reference": str(p.value)} for p in _problems(n, seed, exclude, unique=True)]


def eval_keys(n: int, seed: int) -> set[ProblemKey]:
    """The (a, op, b) keys of eval_rows(n, seed), to exclude them from training data."""
    return {p.key for p in _problems(n, seed, unique=True)}


def _fact_sentence(rng: random.Random, p: Problem) -> str:
    """Plain prose about numbers (not chat): column-method sums, facts, counting, successors.

    Three sentences in eight work a sum in the SFT answers' notation, so continual pre-training
    teaches the skill and SFT mostly has to learn the chat format around it."""
    kind = rng.randrange(8)
    if kind >= 5:
        steps = _addition_steps(p.a, p.b) if p.op == "+" else _subtraction_steps(p.a, p.b)
        return f"{steps} So {p.a} {p.op} {p.b} = {p.value}."
    if kind == 0:
        word = "plus" if p.op == "+" else "minus"
        return f"{p.a} {word} {p.b} is {p.value}."
    if kind == 1:
        verb = "buys" if p.op == "+" else "sells"
        who, it = rng.choice(NAMES), rng.choice(ITEMS)
        return f"{who} had {p.a} {it} and {verb} {p.b}, so now {who} has {p.value} {it}."
    if kind == 2:
        x, y = rng.randint(0, 9), rng.randint(0, 9)  # the facts the column method is built from
        return f"{x} plus {y} is {x + y}, and {x + 10} minus {y} is {x + 10 - y}."
    if kind == 3:
        start = rng.randint(0, 95)
        return "Counting up: " + ", ".join(str(k) for k in range(start, start + 5)) + "."
    return f"The number after {p.a} is {p.a + 1}, and the number before {p.a} is {p.a - 1}."


def pretrain_rows(n: int, seed: int, exclude: set | None = None) -> list[dict]:
    """n plain-text documents {"text": ...} of a few number sentences each."""
    rng = random.Random(seed + 1_000_003)  # a stream separate from the problems' own
    problems = _problems(n * 4, seed, exclude)
    return [{"text": " ".join(_fact_sentence(rng, p) for p in problems[i * 4 : (i + 1) * 4])} for i in range(n)]


_INT = re.compile(r"(?<!\d)-?\d+")  # a minus right after a digit is subtraction, not a sign


def extract_final_number(text: str) -> str | None:
    """The verifier's answer: the last integer in the text, sign kept, commas and leading zeros dropped."""
    found = _INT.findall(text.replace(",", ""))
    return str(int(found[-1])) if found else None


def is_correct(completion: str, reference: str) -> bool:
    """Exact match of the completion's final number with the reference."""
    return extract_final_number(completion) == reference


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_quickstart_data(
    out_dir,
    n_pretrain: int = 4000,
    n_sft: int = 20000,
    n_sft_eval: int = 200,
    n_test: int = 200,
    n_rl: int = 2000,
    seed: int = 0,
) -> dict[str, Path]:
    """Write the quickstart's files; no pretrain, sft_train, sft_eval or rl_prompts problem shares
    (a, op, b) with test."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    held_out = eval_keys(n_test, seed + 3)
    return {
        "pretrain": _write_jsonl(out / "pretrain.jsonl", pretrain_rows(n_pretrain, seed, held_out)),
        "sft_train": _write_jsonl(out / "sft_train.jsonl", sft_rows(n_sft, seed + 1, held_out)),
        "sft_eval": _write_jsonl(out / "sft_eval.jsonl", sft_rows(n_sft_eval, seed + 2, held_out)),
        "test": _write_jsonl(out / "test.jsonl", eval_rows(n_test, seed + 3)),
        "rl_prompts": _write_jsonl(out / "rl_prompts.jsonl", rl_prompt_rows(n_rl, seed + 4, held_out)),
    }
