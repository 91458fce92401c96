"""From a task's documents to prompt token ids: templates, few-shot examples, chain of thought,
chat template or plain text.

Prompts are built as chat messages in every case. A chat model sees them through its own chat
template (few-shot examples as earlier user/assistant turns); a base model sees them as plain text:
each user turn followed by its answer, examples separated by a blank line, after one BOS.
"""

from __future__ import annotations

import random
from typing import Any

from posttrain.errors import UserError

# Kojima et al. (2022), "Large Language Models are Zero-Shot Reasoners": the zero-shot CoT trigger.
COT_TRIGGER = "Let's think step by step."
DIRECT_TARGET = "The answer is {reference}."
COT_TARGET = "{rationale} The answer is {reference}."


def fill(template: str, doc: dict[str, Any], task: str = "") -> str:
    """str.format over a document's fields, with a one-line error naming a missing field."""
    try:
        return template.format_map(doc)
    except KeyError as err:
        fields = ", ".join(sorted(k for k in doc if not k.startswith("_")))
        where = f"task '{task}': " if task else ""
        raise UserError(f"{where}template names field {err} that the data does not have; fields: {fields}") from None
    except (IndexError, ValueError) as err:
        raise UserError(f"task '{task}': bad template {template!r}: {err}") from None


def task_examples(task, pool: list[dict], doc: dict) -> list[dict]:
    """The task's few-shot documents for `doc`: from the pool's documents of the same
    task.few_shot_group value (e.g. MMLU's subject) when set, then drawn at random (seeded) or,
    with few_shot_sampler "first", the first few_shot of them in file order -- lm-evaluation-
    harness's first_n sampler over the subject's dev split."""
    if task.few_shot <= 0:
        return []
    if task.few_shot_group and doc.get(task.few_shot_group) is not None:
        pool = _grouped(pool, task.few_shot_group).get(doc[task.few_shot_group], [])
    return pick_examples(pool, task.few_shot, doc, task.few_shot_seed, first=task.few_shot_sampler == "first")


_GROUPS: dict[tuple[int, str], tuple[list[dict], dict[Any, list[dict]]]] = {}


def _grouped(pool: list[dict], field: str) -> dict[Any, list[dict]]:
    """The pool's documents by their value of `field`, in pool order; built once per pool (the
    entry keeps the pool alive, so its id cannot be reused while cached)."""
    key = (id(pool), field)
    if key not in _GROUPS:
        groups: dict[Any, list[dict]] = {}
        for d in pool:
            groups.setdefault(d.get(field), []).append(d)
        if len(_GROUPS) >= 4:
            _GROUPS.pop(next(iter(_GROUPS)))
        _GROUPS[key] = (pool, groups)
    return _GROUPS[key][1]


def pick_examples(pool: list[dict], k: int, doc: dict, seed: int, first: bool = False) -> list[dict]:
    """k few-shot documents, the same for a document whatever --limit is (seeded by its id, or
    the pool's first k with first=True), never the document itself when the pool is the
    evaluated set."""
    if k <= 0:
        return []
    if first:
        drawn = pool[: k + 1]
    else:
        rng = random.Random(f"{seed}:{doc.get('_id', 0)}")
        # k + 1 draws leave k after dropping the document itself (a separate pool has "shot-N" ids)
        drawn = [pool[i] for i in rng.sample(range(len(pool)), min(k + 1, len(pool)))]
    chosen = [d for d in drawn if d.get("_id") != doc.get("_id")][:k]
    if len(chosen) < k:
        raise UserError(
            f"few_shot={k} needs at least {k} example documents besides each evaluated one, found {len(chosen)}"
        )  # short only when the whole pool was drawn
    return chosen


def with_cot(user: str, cot: bool) -> str:
    return f"{user}\n{COT_TRIGGER}" if cot else user


def target_text(doc: dict, cot: bool, template: str | None = None, task: str = "") -> str:
    """A few-shot example's answer: the task's target template, else a worked rationale (chain of
    thought, when the document has one) or just the final answer."""
    if template:
        return fill(template, doc, task)
    if cot and doc.get("rationale"):
        return fill(COT_TARGET, doc, task)
    return fill(DIRECT_TARGET, doc, task)
