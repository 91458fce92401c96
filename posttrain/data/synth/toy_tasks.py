"""Small generated tasks that the tiny recipes besides the quickstart's need (no model):

- parity ("Is N even or odd?") and size ("Is N big or small?", big from 550): SFT conversations,
  held-out test rows {prompt, reference} and preference pairs (right answer chosen, wrong rejected);
- the two-turn colour dialogues of REFUEL ({"turns": [opener, "The colour is red. ..."],
  "reference": "red"}).

Numbers 100-999 are shuffled once (seeded); the first 80 are held out for every task, so no test
number appears in any training file. These are the tasks of tests/integration/test_sft_learns.py,
test_reward.py and test_refuel.py.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HELD_OUT = 80
BIG_FROM = 550
COLOURS = ["red", "blue", "green", "yellow"]
COLOUR_OPENERS = [
    "I will name a colour in my next message. Say ready.",
    "Next I tell you a colour. Say ready.",
    "Get ready for a colour. Say ready.",
    "A colour comes in my next message. Say ready.",
    "Listen for the colour I name next. Say ready.",
    "I am thinking of a colour. Say ready.",
]


def parity_answer(n: int) -> tuple[str, str]:
    """(right, wrong) answer to "Is n even or odd?"."""
    return ("even", "odd") if n % 2 == 0 else ("odd", "even")


def size_answer(n: int) -> tuple[str, str]:
    return ("big", "small") if n >= BIG_FROM else ("small", "big")


TASKS = {"parity": ("Is {n} even or odd?", parity_answer), "size": ("Is {n} big or small?", size_answer)}


def split_numbers(seed: int) -> tuple[list[int], list[int]]:
    """(held-out, training) numbers: one seeded shuffle of 100-999."""
    numbers = list(range(100, 1000))
    random.Random(seed).shuffle(numbers)
    return numbers[:HELD_OUT], numbers[HELD_OUT:]


def task_rows(task: str, seed: int = 0) -> dict[str, list[dict]]:
    """The files of one question task: sft, test, pairs (training numbers) and pairs_eval (held out)."""
    question, answer = TASKS[task]
    held_out, train = split_numbers(seed)

    def pair(n: int) -> dict:
        right, wrong = answer(n)
        return {"prompt": question.format(n=n), "chosen": right, "rejected": wrong}

    return {
        "sft": [
            {
                "messages": [
                    {"role": "user", "content": question.format(n=n)},
                    {"role": "assistant", "content": answer(n)[0]},
                ]
            }
            for n in train
        ],
        "test": [{"prompt": question.format(n=n), "reference": answer(n)[0]} for n in held_out],
        "pairs": [pair(n) for n in train],
        "pairs_eval": [pair(n) for n in held_out],
    }


def colour_dialogue(i: int) -> dict:
    opener, colour = COLOUR_OPENERS[i % len(COLOUR_OPENERS)], COLOURS[i // len(COLOUR_OPENERS)]
    return {"turns": [opener, f"The colour is {colour}. Which colour did I say?"], "reference": colour}


def dialogue_rows(seed: int = 0) -> dict[str, list[dict]]:
    """The 24 colour dialogues: 8 held out, 16 for training, and their SFT conversations."""
    order = list(range(len(COLOURS) * len(COLOUR_OPENERS)))
    random.Random(seed).shuffle(order)
    held_out, train = [colour_dialogue(i) for i in order[:8]], [colour_dialogue(i) for i in order[8:]]
    sft = [
        {
            "messages": [
                {"role": "user", "content": d["turns"][0]},
                {"role": "assistant", "content": "ready"},
                {"role": "user", "content": d["turns"][1]},
                {"role": "assistant", "content": d["reference"]},
            ]
        }
        for d in train
    ]
    return {"dialogues": train, "dialogues_eval": held_out, "dialogues_sft": sft}


def write_toy_tasks(out_dir, seed: int = 0) -> dict[str, Path]:
    """Every file, as OUT/<task>_<part>.jsonl and OUT/dialogues*.jsonl; returns name -> path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {f"{task}_{part}": rows for task in TASKS for part, rows in task_rows(task, seed).items()}
    files.update(dialogue_rows(seed))
    written = {}
    for name, rows in files.items():
        path = out / f"{name}.jsonl"
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        tmp.replace(path)  # atomic: a reader never sees half a file
        written[name] = path
    return written
