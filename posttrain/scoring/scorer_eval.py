"""`posttrain reward-eval --scorer NAME[:k=v,...]`: RewardBench-style pairwise accuracy of ANY scorer
of posttrain/rewards' registry (density_ratio, judge, a verifier, a user function), not only a
sequence-classification reward model.

    posttrain reward-eval --scorer density_ratio:strong=INSTRUCT,weak=BASE --data PAIRS.jsonl
    posttrain reward-eval --scorer judge:model=http://127.0.0.1:8000/v1 --data PAIRS.jsonl

Rows {prompt, chosen, rejected, subset | category} (RewardBench's); chosen/rejected are text or
messages. The scorer sees each response as grpo's rewards do: the row's fields, `prompt` as chat
messages and `reference`. A pair is right when the chosen response's total score is strictly higher
(a tie counts as wrong, as for reward models; a verifier that says 0 to both is a tie). CDR
(Xu et al. 2024) reports RewardBench for its density-ratio scorer this way.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from posttrain.errors import UserError, row_error

DEFAULT_EVAL_ROOT = Path("runs") / "reward-eval"


def read_pairs(path: str) -> list[dict]:
    """Each row as {row, fields, messages (the prompt), reference, chosen, rejected (texts)}."""
    from posttrain.data.records import RecordError, to_record
    from posttrain.data.sources import read_rows
    from posttrain.scoring.score import completion_text

    pairs = []
    for number, fields in read_rows(path):
        for side in ("chosen", "rejected"):
            if fields.get(side) is None:
                raise row_error(path, number, side, "missing: a pair needs prompt, chosen and rejected")
        try:
            record = to_record({k: v for k, v in fields.items() if k not in ("chosen", "rejected")}, "prompt")
        except RecordError as err:
            raise row_error(path, number, err.field, err.problem) from None
        texts = {
            side: completion_text(fields[side], f"{path}: row {number}: field '{side}'")
            for side in ("chosen", "rejected")
        }
        pairs.append(
            {"row": number, "fields": fields, "messages": record.prompt, "reference": record.reference, **texts}
        )
    if not pairs:
        raise UserError(f"{path}: no rows")
    return pairs


def pair_scores(pairs: list[dict], reward_set) -> tuple[list[float], list[float]]:
    """(chosen totals, rejected totals): every response of every pair scored in one call, so a
    batched scorer (reward model, judge, density ratio) sees them all at once."""
    samples = [{**p["fields"], "prompt": p["messages"], "reference": p["reference"]} for p in pairs for _ in range(2)]
    completions = [p[side] for p in pairs for side in ("chosen", "rejected")]
    totals = [reward_set.total(s) for s in reward_set.score_all(samples, completions)]
    return totals[0::2], totals[1::2]


def scorer_reward_eval(data: str, scorer_specs: list[str], output_dir: str | None = None) -> dict:
    """Accuracy per category, group and overall for the scorers' weighted total; returns results.json."""
    from posttrain.data.jobs import write_atomically
    from posttrain.eval.reward_bench import category_of, category_results, summary, summary_table
    from posttrain.rewards import RewardSet
    from posttrain.scoring.score import check_inputs, parse_scorer, split_scorer

    pairs = read_pairs(data)
    check_inputs(pairs, [split_scorer(spec)[0] for spec in scorer_specs], data)  # before any model loads
    reward_set = RewardSet([parse_scorer(spec) for spec in scorer_specs])
    chosen, rejected = pair_scores(pairs, reward_set)
    categories = [category_of(p["fields"]) for p in pairs]
    doc = {
        "scorers": list(scorer_specs),
        "data": str(data),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **summary(category_results(categories, chosen, rejected)),
    }
    out_dir = Path(output_dir) if output_dir else DEFAULT_EVAL_ROOT / _scorer_dir_name(scorer_specs)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(out_dir / "results.json", json.dumps(doc, indent=2) + "\n")
    write_atomically(
        out_dir / "scores.jsonl",
        "".join(
            json.dumps({"row": p["row"], "category": c, "chosen_score": w, "rejected_score": l}) + "\n"
            for p, c, w, l in zip(pairs, categories, chosen, rejected)
        ),
    )
    print(summary_table(doc))
    print(f"wrote {out_dir / 'results.json'}")
    return doc


def _scorer_dir_name(specs: list[str]) -> str:
    """The scorers' names (no options: those may hold paths or URLs), e.g. 'density_ratio+math'."""
    from posttrain.scoring.score import split_scorer

    names = [split_scorer(spec)[0].replace(":", ".").replace("/", "_") for spec in specs]
    return "+".join(names)
