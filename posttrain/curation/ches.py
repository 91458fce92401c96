"""CHES filtering of preference pairs (Razin et al. 2024, "Unintentional Unalignment: Likelihood
Displacement in Direct Preference Optimization"): pairs whose preferred and dispreferred
responses look alike to the model cause likelihood displacement (log p(y_w) falls under DPO);
the Centered Hidden Embedding Similarity finds them.

    posttrain curate ches --set input=pairs.jsonl --set model=runs/sft/final --set quantile=0.1 --out kept.jsonl

With h_k the model's last-layer hidden state (the final norm's output, the LM head's input) that
predicts response token k (the state at position k-1):
    S+ = sum_k h_k over y_w's tokens, S- = sum_k h_k over y_l's tokens
    CHES(x, y_w, y_l) = <S+, S-> - ||S+||^2
and the length-normalised variant uses the means of the states instead of their sums (the
paper's length-normalised CHES). Response tokens are those a DPO run trains on (data/preference.py: the template's end
of turn included). Pairs are scored in batches as a resumable job (OUT-stem.ches.jsonl: row,
ches, ches_length_normalised), then the top `quantile` of pairs by `rank_by` (the floor of
quantile x pairs; ties broken by row order) are removed by curation/rows.py's pass: OUT holds the
rest unchanged, OUT-stem.removed.jsonl names each removed row with its scores (and rows skipped
as invalid, filter "unscored"), OUT-stem.manifest.json the cut.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from posttrain.config.base import Positive, Section

NAME = "ches"
HELP = "score preference pairs by CHES (model hidden states) and drop the top quantile"


SCORE_KEYS = {"ches": "ches", "length_normalised": "ches_length_normalised"}  # rank_by -> score column


class Recipe(Section):
    input: str  # preference file: prompt + chosen + rejected
    out: str  # kept pairs, in the input's format (.jsonl/.parquet); scores, report, manifest beside it
    model: str  # the model to be trained (directory, adapter directory, hub id in the cache, 'tiny')
    quantile: Annotated[float, Field(ge=0, lt=1)] = 0.1  # share of pairs removed, highest CHES first
    rank_by: Literal["ches", "length_normalised"] = "ches"
    batch_size: Positive = 8  # pairs per forward pass
    max_length: Positive = 4096  # longer pairs: error, or skipped with on_error=skip
    on_error: Literal["fail", "skip"] = "fail"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"


def ches_from_hidden(hidden, labels, num_pairs: int):
    """(CHES [P], length-normalised CHES [P]) from the last hidden states [2P, T, H] of the rows
    chosen_1..chosen_P, rejected_1..rejected_P and their labels [2P, T] (IGNORE off the response)."""
    import torch

    from posttrain.data.batching import IGNORE

    predicts = (labels[:, 1:] != IGNORE).to(torch.float32)  # the state at t-1 predicts token t
    sums = (hidden[:, :-1].to(torch.float32) * predicts.unsqueeze(-1)).sum(1)
    means = sums / predicts.sum(1, keepdim=True).clamp(min=1)

    def ches(vectors):
        plus, minus = vectors[:num_pairs], vectors[num_pairs:]
        return (plus * minus).sum(-1) - (plus * plus).sum(-1)

    return ches(sums), ches(means)


class PairScorer:
    """process_batch for generation/jobs.run_job: CHES of each pair of a batch, one forward."""

    def __init__(self, model, pad_id: int):
        self.model, self.pad_id = model, pad_id

    def __call__(self, batch: list, index: int):
        import torch

        from posttrain.data.jobs import BatchOutput
        from posttrain.data.preference import collate_pairs

        collated = collate_pairs([pair for _, pair in batch], self.pad_id)
        device = next(self.model.parameters()).device
        with torch.no_grad():
            hidden = self.model.get_decoder()(
                input_ids=collated["input_ids"].to(device), use_cache=False
            ).last_hidden_state
        ches, normalised = ches_from_hidden(hidden, collated["labels"].to(device), len(batch))
        return BatchOutput(
            [
                {"row": row, "ches": float(c), "ches_length_normalised": float(n)}
                for (row, _), c, n in zip(batch, ches.tolist(), normalised.tolist())
            ]
        )


def rows_to_remove(scores: list[dict], key: str, quantile: float) -> set[int]:
    """The rows of the floor(quantile x pairs) highest scores (earlier row first among ties)."""
    ranked = sorted(scores, key=lambda s: (-s[key], s["row"]))
    return {s["row"] for s in ranked[: int(quantile * len(scores))]}


def run(recipe: Recipe) -> int:
    import json
    from pathlib import Path

    from posttrain.curation.rows import PassSpec, out_paths, per_row, run_pass
    from posttrain.data.jobs import JobSpec, file_sha256, run_job
    from posttrain.data.preference import tokenize_pairs
    from posttrain.data.sources import load_records
    from posttrain.errors import UserError
    from posttrain.model.inference import load_model_and_tokenizer

    if Path(recipe.input).is_dir():
        raise UserError(f"input={recipe.input}: ches scores one preference file; got a folder")
    out_paths(recipe.input, recipe.out)  # formats checked before the model loads
    loaded = load_records(recipe.input, "preference", recipe.on_error)
    model, tokenizer = load_model_and_tokenizer(recipe.model, recipe.dtype)
    pairs = tokenize_pairs(tokenizer, loaded, recipe.max_length, recipe.on_error)
    settings = {"model": recipe.model, "dtype": recipe.dtype, "max_length": recipe.max_length}
    out = Path(recipe.out)
    scores_out = out.with_name(out.stem + ".ches.jsonl")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    run_job(
        [(pair.row, pair) for pair in pairs],
        PairScorer(model, pad_id),
        JobSpec(
            out=scores_out,
            batch_size=recipe.batch_size,
            desc="pairs",
            identity={"step": NAME, "input": {"path": recipe.input, "sha256": file_sha256(recipe.input)}, **settings},
        ),
    )
    by_row = {s["row"]: s for s in map(json.loads, scores_out.read_text().splitlines())}
    removed = rows_to_remove(list(by_row.values()), SCORE_KEYS[recipe.rank_by], recipe.quantile)
    cut = min((by_row[r][SCORE_KEYS[recipe.rank_by]] for r in removed), default=None)

    def verdict(where, row):
        score = by_row.get(where.number)
        if score is None:  # invalid or too long, skipped with on_error=skip: reported, never silently dropped
            return {"filter": "unscored"}
        return {"filter": NAME, **{k: score[k] for k in SCORE_KEYS.values()}} if where.number in removed else None

    spec = PassSpec(
        recipe.input,
        recipe.out,
        NAME,
        {**settings, "rank_by": recipe.rank_by, "quantile": recipe.quantile, "on_error": recipe.on_error},
        desc="ches",
        extra={"removed_at_or_above": cut, "scores": str(scores_out)},
    )
    counts = run_pass(spec, per_row(verdict))["counts"]
    print(
        f"ches: kept {counts['kept']} of {counts['rows_in']} (top {recipe.quantile:.0%} by {recipe.rank_by}, "
        f"score >= {cut}; removed: {counts['removed_by']}) -> {recipe.out}"
    )
    return 0
