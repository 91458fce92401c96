"""Entity-level NER F1 (CoNLL-2000 conlleval's definition, Me LLaMA's entity F1) through seqeval:
an entity counts when its type and exact span match; micro-averaged over the corpus. The model's
answer and the reference are BIO tag sequences (space-separated, or a JSON list in the reference)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from posttrain.errors import UserError


def tags(value) -> list[str]:
    if isinstance(value, list):
        return [str(t) for t in value]
    text = str(value).strip()
    if text.startswith("["):
        try:
            return [str(t) for t in json.loads(text)]
        except ValueError:
            pass
    return text.split()


def aligned(reference: list[str], predicted: list[str]) -> list[str]:
    """The prediction cut or padded with O to the reference's length (a model may say too much or too little)."""
    return (predicted + ["O"] * len(reference))[: len(reference)]


def entity_f1(references: Sequence[list[str]], predictions: Sequence[list[str]]) -> float:
    try:
        from seqeval.metrics import f1_score
    except ImportError:
        raise UserError("the ner_f1 metric needs `pip install seqeval`") from None
    return float(f1_score(list(references), [aligned(r, p) for r, p in zip(references, predictions)]))
