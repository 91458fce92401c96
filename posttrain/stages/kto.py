"""KTO on unpaired desirable/undesirable examples (Ethayarajh et al. 2024).

    posttrain kto recipes/tiny/kto.yaml [--set preference.beta=0.1]

Data: TRL's unpaired rows {prompt, completion, label} or paired rows (chosen counts as desirable,
rejected as undesirable). Reference log-probs of each completion and of its fixed mismatched
partner (for the z0 estimate) are computed once before training and cached. data.pack puts several
examples in one row with no attention across them (data/unpaired.py), the same training run.
"""

from __future__ import annotations

import functools

from posttrain.config.recipe import Recipe
from posttrain.data import pointless
from posttrain.data.chat import ensure_chat_template
from posttrain.data.plans import EpochPlan, eval_micro_batches
from posttrain.data.prepare import max_length_for, split_holdout
from posttrain.data.unpaired import (
    collate_unpaired,
    collate_unpaired_reference,
    read_unpaired,
    tokenize_unpaired,
)
from posttrain.errors import UserError
from posttrain.model.load import context_length
from posttrain.model.logprobs import TokenLogprobs
from posttrain.model.segment_mask import use_segment_packing
from posttrain.objectives.pairwise import UnpairedObjective, preference_config
from posttrain.train import loop
from posttrain.train.reference import attach_reference_logps
from posttrain.train.setup import start_run


def run(recipe: Recipe, output_dir: str | None = None, resume: bool = False) -> dict[str, float]:
    if recipe.preference.loss not in ("sigmoid", "kto"):  # the default loss name means "unset"
        raise UserError(
            f"posttrain kto trains KTO; preference.loss '{recipe.preference.loss}' belongs to posttrain dpo"
        )
    ctx = start_run(recipe, "kto", output_dir, resume)
    tok, data = ctx.tokenizer, ctx.recipe.data
    ensure_chat_template(tok)
    max_len = max_length_for(data, context_length(ctx.model))
    if not data.sources:
        raise UserError("the recipe has no data sources (data.sources)")
    train = [ex for s in data.sources for ex in read_unpaired(s.path, data.on_error, max_row_bytes=data.max_row_bytes)]
    held = [
        ex for s in data.eval_sources for ex in read_unpaired(s.path, data.on_error, max_row_bytes=data.max_row_bytes)
    ]
    pointless.one_sided_labels([ex.desirable for ex in train])
    if not held:
        train, held = split_holdout(train, data.eval_fraction, ctx.recipe.seed)
    train, held = (
        tokenize_unpaired(tok, part, max_len, ctx.recipe.seed, data.on_error) if part else [] for part in (train, held)
    )
    pack_length = max_len if use_segment_packing(ctx.model, data.pack, "kto") else None
    collate = functools.partial(collate_unpaired, pad_id=tok.pad_token_id, pack_length=pack_length)
    reference_collate = (
        functools.partial(collate_unpaired_reference, pad_id=tok.pad_token_id, pack_length=2 * max_len)
        if pack_length
        else collate
    )
    attach_reference_logps(ctx, train + held, reference_collate, ("matched", "mismatched"), ("matched", "mismatched"))
    lengths = [len(ex) for ex in train] if data.group_by_length else None
    plan = EpochPlan(
        train, collate, ctx.layout, ctx.recipe.seed, ctx.recipe.train.max_steps, ctx.recipe.train.epochs, lengths
    )
    job = loop.TrainJob(
        recipe=ctx.recipe,
        out_dir=ctx.out_dir,
        accelerator=ctx.accelerator,
        policy=TokenLogprobs(ctx.model, ctx.recipe.train.logprob_chunk_size),
        tokenizer=tok,
        plan=plan,
        objective=UnpairedObjective(preference_config(ctx.recipe.preference)),
        eval_batches=eval_micro_batches(held, collate, ctx.layout),
        resume_from=ctx.resume_from,
    )
    return loop.run(job)
