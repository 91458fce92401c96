"""`posttrain reward-eval`: RewardBench-style accuracy of a trained reward model.

    posttrain reward-eval RM_DIR --data FILE [--batch-size B] [--output-dir DIR]

Pairwise accuracy per category (rows {prompt, chosen, rejected, subset | category}), per section
and their mean; prints a table, writes results.json and scores.jsonl.
RM_DIR: a reward model directory (`posttrain reward`'s final/) or a LoRA reward adapter.
With a multi-attribute model, --attribute names the output that scores (default: the first).
(`posttrain score RM_DIR ...`, best-vs-worst pairs, is score.py's reward-model form.)
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from posttrain.errors import UserError

DEFAULT_EVAL_ROOT = Path("runs") / "reward-eval"


def reward_eval_command(
    model_dir: str,
    data: str,
    batch_size: int = 8,
    output_dir: str | None = None,
    attribute: str | None = None,
    dtype: str | None = None,
) -> dict:
    """Accuracy per category, group and overall; returns what results.json holds."""
    from posttrain.config.recipe import SourceConfig
    from posttrain.data.reward import reward_pairs
    from posttrain.data.sources import read_rows
    from posttrain.eval.reward_bench import (
        category_of,
        category_results,
        summary,
        summary_table,
    )

    model, tokenizer, index = _open(model_dir, attribute, dtype)
    pairs = reward_pairs(tokenizer, SourceConfig(path=data), _context(model), "fail")
    categories = [category_of(fields) for _, fields in read_rows(data)]  # every row is a pair
    sequences = [ids for p in pairs for ids in (p.chosen, p.rejected)]
    scores = _scores(model, tokenizer, sequences, batch_size, index)
    chosen, rejected = scores[0::2], scores[1::2]
    doc = summary(category_results(categories, chosen, rejected))
    out_dir = Path(output_dir) if output_dir else DEFAULT_EVAL_ROOT / _model_name(model_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "model": str(model_dir),
        "data": str(data),
        "attribute": _label(model, index),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **doc,
    }
    (out_dir / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    _write_jsonl(
        out_dir / "scores.jsonl",
        [{"category": c, "chosen_score": w, "rejected_score": l} for c, w, l in zip(categories, chosen, rejected)],
    )
    print(summary_table(doc))
    print(f"wrote {out_dir / 'results.json'}")
    return doc


def _open(model_dir: str, attribute: str | None, dtype: str | None):
    """(reward model, tokenizer with a chat template, index of the scoring output)."""
    from posttrain.data.chat import ensure_chat_template
    from posttrain.model.reward_model import load_reward_model_dir

    model, tokenizer = load_reward_model_dir(model_dir, dtype)
    ensure_chat_template(tokenizer)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if attribute is None:
        return model, tokenizer, 0
    if attribute not in labels:
        raise UserError(f"--attribute {attribute}: the model's outputs are {', '.join(labels)}")
    return model, tokenizer, labels.index(attribute)


def _scores(model, tokenizer, sequences: list[list[int]], batch_size: int, index: int) -> list[float]:
    from posttrain.model.reward_model import score_sequences

    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    return score_sequences(model, sequences, tokenizer.pad_token_id, batch_size)[:, index].tolist()


def _context(model) -> int:
    from posttrain.model.load import context_length

    return context_length(model)


def _label(model, index: int) -> str:
    return model.config.id2label[index]


def _model_name(model_dir: str) -> str:
    """A run's final/ is named after its run directory."""
    path = Path(model_dir)
    return path.parent.name if path.name == "final" and path.parent.name else path.name


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
