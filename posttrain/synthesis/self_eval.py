"""Self-evaluation SFT rows (Manvi et al. 2024, capability-aware self-evaluation; the target and the
question are defined in posttrain/eval/self_eval.py) from scored on-policy samples:

    posttrain sample SFT_DIR --prompts prompts.jsonl --n 4 --temperature 1.0 --out samples.jsonl
    posttrain score --data samples.jsonl --scorer math --out scored.jsonl
    posttrain synth self_eval --set input=scored.jsonl --out self_eval_sft.jsonl
    posttrain sft recipe.yaml --set model=SFT_DIR --set data=[self_eval_sft.jsonl]

Each prompt with N >= 2 scored completions gives N(N-1) rows: completion i (as an untrained
`weight: 0` assistant turn), the question, and "No." when the other completion j scores no higher,
else "Yes.". Prompts with fewer than two completions are skipped and counted; a completion
without a score is a one-line error naming the row.
"""

from __future__ import annotations

from posttrain.config.base import Section

NAME = "self_eval"
HELP = "self-evaluation SFT rows ('would a new attempt do better?') from scored samples"


class Recipe(Section):
    input: str  # `posttrain score` output: {prompt, completions: [{text, score}]}
    out: str  # the SFT conversations (jsonl)


def self_eval_rows(rows: list[tuple[int, dict]], source: str) -> tuple[list[dict], dict[str, int]]:
    from posttrain.data.records import RecordError, to_record
    from posttrain.errors import UserError
    from posttrain.eval.self_eval import self_eval_messages, win_or_tie_targets

    out, counts = [], {"prompts": 0, "too_few": 0, "no_better": 0, "better": 0}
    for number, row in rows:
        completions = row.get("completions") or []
        if any(not isinstance(c, dict) or not isinstance(c.get("score"), (int, float)) for c in completions):
            raise UserError(
                f"{source}: row {number}: field 'completions': every completion needs a numeric "
                "'score' (score the samples first: posttrain score --data SAMPLES --scorer NAME)"
            )
        if len(completions) < 2:
            counts["too_few"] += 1
            continue
        try:
            prompt = to_record({"prompt": row.get("prompt")}, "prompt").prompt
        except RecordError as err:
            raise UserError(f"{source}: row {number}: {err}") from None
        counts["prompts"] += 1
        targets = win_or_tie_targets([float(c["score"]) for c in completions])
        for completion, answers in zip(completions, targets):
            for no_better in answers:
                out.append({"messages": self_eval_messages(prompt, completion["text"], no_better)})
                counts["no_better" if no_better else "better"] += 1
    return out, counts


def run(recipe: Recipe) -> int:
    import json
    from pathlib import Path

    from posttrain.checkpoint.io import write_text_atomically
    from posttrain.data.sources import read_rows

    rows = list(read_rows(Path(recipe.input)))
    out, counts = self_eval_rows(rows, recipe.input)
    write_text_atomically(Path(recipe.out), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out))
    print(
        f"{recipe.out}: {len(out)} rows from {counts['prompts']} prompts ({counts['no_better']} 'No.', "
        f"{counts['better']} 'Yes.'; {counts['too_few']} prompts with fewer than 2 completions skipped)"
    )
    return 0
