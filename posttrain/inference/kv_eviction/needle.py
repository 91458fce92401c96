"""A generated needle-in-a-haystack retrieval task for KV-cache eviction.

A haystack of the tiny tokenizer's number prose (whose sentences also name random number words
and numbers, the distractors) hides one needle, "The magic word is # seven.", at a random
sentence; the text ends with the question "What is the magic word? The magic word is #" and the
answer is " seven", one of 30 words that are single tokens of the tiny tokenizer (chance 1/30).
'#' marks the needle so that a two-layer model can find it with one induction step (attend to the
token after the earlier '#'). With the full cache a model that learned the task copies the word;
an eviction policy that dropped the needle's cache units cannot. Rows are `text` rows (the whole text with its answer, for
`posttrain pretrain`) plus the split `prompt`/`answer` used by `posttrain kv eval`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from posttrain.data.synth.english import NUMBER_WORDS

QUESTION = " What is the magic word? The magic word is #"
CHAT_QUESTION = " What is the magic word?"
# Llama-3's chat format (the tiny tokenizer's template) up to the assistant's first token '#'
_CHAT_PROMPT = (
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{user}<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n#"
)


def needle_row(rng: random.Random, sentences: int) -> dict:
    """One item: `sentences` haystack sentences with the needle inserted at a random place."""
    from posttrain.data.synth.english import english_sentences

    value = rng.choice(NUMBER_WORDS)
    hay = english_sentences(sentences, rng)
    at = rng.randint(0, sentences)
    hay.insert(at, f"The magic word is # {value}.")
    prompt = " ".join(hay) + QUESTION
    answer = f" {value}"
    user = " ".join(hay) + CHAT_QUESTION
    return {
        "text": prompt + answer + ".",
        "prompt": prompt,
        "answer": answer,
        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": "#" + answer}],
        "chat_prompt": _CHAT_PROMPT.format(user=user),
        "needle_sentence": at,
        "sentences": sentences,
    }


def needle_rows(n: int, seed: int, min_sentences: int, max_sentences: int) -> list[dict]:
    """`n` items whose haystack lengths are uniform in [min_sentences, max_sentences]."""
    rng = random.Random(seed)
    return [needle_row(rng, rng.randint(min_sentences, max_sentences)) for _ in range(n)]


def write_jsonl(rows: list[dict], path: str | Path) -> Path:
    """Write rows as JSON lines atomically."""
    from posttrain.checkpoint.io import write_text_atomically

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, "".join(json.dumps(r) + "\n" for r in rows))
    return path


def read_items(path: str | Path, limit: int | None = None) -> list[dict]:
    """Rows with `prompt` and `answer` strings; a malformed row is a one-line UserError."""
    from posttrain.errors import UserError

    items = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}: row {number}: not JSON ({e.msg})") from None
        for field in ("prompt", "answer"):
            if not isinstance(row, dict) or not isinstance(row.get(field), str) or not row[field]:
                raise UserError(f"{path}: row {number}: field {field}: missing or not a non-empty string")
        items.append(row)
        if limit is not None and len(items) >= limit:
            break
    if not items:
        raise UserError(f"{path}: no rows")
    return items
