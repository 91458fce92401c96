"""`posttrain reward-eval` and `posttrain score`: use a trained reward model.

    posttrain reward-eval RM_DIR --data FILE [--batch-size B] [--output-dir DIR]
    posttrain score RM_DIR --data FILE --out FILE [--batch-size B]

reward-eval: RewardBench-style pairwise accuracy per category (rows {prompt, chosen, rejected,
subset | category}), per section and their mean; prints a table, writes results.json and
scores.jsonl. score: scores every response of rows {prompt, responses | completions: [...]} and
writes TRL preference rows {prompt, chosen, rejected, chosen_score, rejected_score} with chosen
= the best response and rejected = the worst (prompts whose scores all tie are skipped), the
building block of best-vs-worst pipelines (SELM, FuseChat, weak-to-strong).
RM_DIR: a reward model directory (`posttrain reward`'s final/) or a LoRA reward adapter.
With a multi-attribute model, --attribute names the output that scores (default: the first).
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

from posttrain.errors import UserError

DEFAULT_EVAL_ROOT = Path("runs") / "reward-eval"
REWARD_COMMANDS = ("reward-eval", "score")


def add_reward_parsers(subparsers) -> None:
    e = subparsers.add_parser("reward-eval", help="pairwise accuracy of a reward model per category "
                              "(RewardBench style)")
    _common_arguments(e)
    e.add_argument("--output-dir", help=f"where results.json goes (default {DEFAULT_EVAL_ROOT}/<model>)")
    s = subparsers.add_parser("score", help="score responses with a reward model; write best-vs-worst "
                              "preference pairs")
    _common_arguments(s)
    s.add_argument("--out", required=True, help="output .jsonl of TRL preference rows")


def _common_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="reward model directory or LoRA reward adapter")
    p.add_argument("--data", required=True, help="data file (.jsonl, .json, .parquet, .csv) or dataset dir")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--attribute", help="multi-attribute model: the output that scores (default: first)")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"],
                   help="load the weights in this dtype (default: as saved)")


def run_reward_command(args: argparse.Namespace) -> None:
    if args.command == "reward-eval":
        reward_eval_command(args.model, args.data, args.batch_size, args.output_dir, args.attribute,
                            args.dtype)
    elif args.command == "score":
        score_command(args.model, args.data, args.out, args.batch_size, args.attribute, args.dtype)
    else:
        raise UserError(f"not a reward command: {args.command}")


def reward_eval_command(model_dir: str, data: str, batch_size: int = 8, output_dir: str | None = None,
                        attribute: str | None = None, dtype: str | None = None) -> dict:
    """Accuracy per category, group and overall; returns what results.json holds."""
    from posttrain.config import SourceConfig
    from posttrain.data.reward import reward_pairs
    from posttrain.data.sources import read_rows
    from posttrain.eval.reward_bench import category_of, category_results, summary, summary_table

    model, tokenizer, index = _open(model_dir, attribute, dtype)
    pairs = reward_pairs(tokenizer, SourceConfig(path=data), _context(model), "fail")
    categories = [category_of(fields) for _, fields in read_rows(data)]  # every row is a pair
    sequences = [ids for p in pairs for ids in (p.chosen, p.rejected)]
    scores = _scores(model, tokenizer, sequences, batch_size, index)
    chosen, rejected = scores[0::2], scores[1::2]
    doc = summary(category_results(categories, chosen, rejected))
    out_dir = Path(output_dir) if output_dir else DEFAULT_EVAL_ROOT / _model_name(model_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {"model": str(model_dir), "data": str(data), "attribute": _label(model, index),
           "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **doc}
    (out_dir / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    _write_jsonl(out_dir / "scores.jsonl", [
        {"category": c, "chosen_score": w, "rejected_score": l}
        for c, w, l in zip(categories, chosen, rejected)])
    print(summary_table(doc))
    print(f"wrote {out_dir / 'results.json'}")
    return doc


def score_command(model_dir: str, data: str, out: str, batch_size: int = 8,
                  attribute: str | None = None, dtype: str | None = None) -> dict[str, int]:
    """Write best-vs-worst preference rows; returns counts of pairs written and prompts skipped."""
    from posttrain.data.preference import tokenize_completion
    from posttrain.data.reward import response_sets

    model, tokenizer, index = _open(model_dir, attribute, dtype)
    sets = response_sets(data)
    max_length = _context(model)
    sequences = []
    for s in sets:
        for i, response in enumerate(s.response_messages):
            ids = tokenize_completion(tokenizer, s.prompt_messages, response).input_ids
            if len(ids) > max_length:
                raise UserError(f"{data}: row {s.row}: response {i}: {len(ids)} tokens, longer than "
                                f"the reward model's context ({max_length})")
            sequences.append(ids)
    scores = _scores(model, tokenizer, sequences, batch_size, index)
    rows, counts, start = [], {"pairs": 0, "ties": 0, "too_few": 0}, 0
    for s in sets:
        mine, start = scores[start : start + len(s.responses)], start + len(s.responses)
        row = _best_vs_worst(s, mine)
        if row is None:
            counts["too_few" if len(mine) < 2 else "ties"] += 1
            continue
        rows.append(row)
    counts["pairs"] = len(rows)
    _write_jsonl(Path(out), rows)
    print(f"wrote {len(rows)} pairs to {out}; skipped {counts['ties']} prompts whose scores all tie "
          f"and {counts['too_few']} with fewer than 2 responses")
    return counts


def _best_vs_worst(s, scores: list[float]) -> dict | None:
    """chosen = the highest-scored response, rejected = the lowest (first on equal scores); None
    when there is no pair (fewer than two responses, or all scores equal). A conversational
    prompt (messages) gets message-list responses, as TRL's conversational format has them."""
    if len(scores) < 2 or max(scores) == min(scores):
        return None
    best, worst = scores.index(max(scores)), scores.index(min(scores))
    as_written = not isinstance(s.prompt, list)
    pick = (lambda i: s.responses[i]) if as_written else (lambda i: s.response_messages[i])
    return {"prompt": s.prompt, "chosen": pick(best), "rejected": pick(worst),
            "chosen_score": scores[best], "rejected_score": scores[worst]}


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
