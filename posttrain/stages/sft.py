"""Supervised fine-tuning on conversations.

    posttrain sft recipes/tiny/sft.yaml [--set train.lr=1e-4] [--output-dir DIR] [--resume]

Loss: next-token NLL on assistant tokens only (every assistant turn, each with its end-of-turn
token), normalised by the number of assistant tokens in the whole optimizer step.
"""

from __future__ import annotations

import functools
import random

from posttrain.config.recipe import Recipe
from posttrain.data.batching import collate_packed, collate_padded, pack_examples
from posttrain.data.chat import ensure_chat_template
from posttrain.data.plans import EpochPlan, eval_micro_batches
from posttrain.data.prepare import (
    check_sources,
    conversation_examples,
    max_length_for,
    split_holdout,
)
from posttrain.data.table import chain, take
from posttrain.model.load import context_length
from posttrain.model.logprobs import TokenLogprobs
from posttrain.objectives.sft import NextTokenObjective
from posttrain.train import loop
from posttrain.train.periodic_eval import generation_eval
from posttrain.train.setup import start_run


def run(recipe: Recipe, output_dir: str | None = None, resume: bool = False) -> dict[str, float]:
    ctx = start_run(recipe, "sft", output_dir, resume)
    recipe, tok, data = ctx.recipe, ctx.tokenizer, ctx.recipe.data
    ensure_chat_template(tok)
    max_len = max_length_for(data, context_length(ctx.model))

    def examples(sources):
        check_sources(sources, "conversation")
        return chain([conversation_examples(tok, s, max_len, data.on_error, data.max_row_bytes) for s in sources])

    train = examples(data.sources)
    held = examples(data.eval_sources) if data.eval_sources else []
    if not held:
        train, held = split_holdout(train, data.eval_fraction, recipe.seed)
    if data.pack:
        # Pack after a seeded shuffle so rows mix examples; rows are then shuffled per epoch.
        # Shuffling the indices draws the same permutation random.shuffle would apply to a list.
        order = list(range(len(train)))
        random.Random(f"{recipe.seed}/pack").shuffle(order)
        train = pack_examples(take(train, order), max_len)
        collate = functools.partial(collate_packed, pad_id=tok.pad_token_id, length=max_len)
    else:
        collate = functools.partial(collate_padded, pad_id=tok.pad_token_id)
    eval_collate = functools.partial(collate_padded, pad_id=tok.pad_token_id)
    lengths = [len(ex) for ex in train] if data.group_by_length and not data.pack else None
    plan = EpochPlan(train, collate, ctx.layout, recipe.seed, recipe.train.max_steps, recipe.train.epochs, lengths)
    job = loop.TrainJob(
        recipe=recipe,
        out_dir=ctx.out_dir,
        accelerator=ctx.accelerator,
        policy=TokenLogprobs(ctx.model, recipe.train.logprob_chunk_size),
        tokenizer=tok,
        plan=plan,
        objective=NextTokenObjective(),
        eval_batches=eval_micro_batches(held, eval_collate, ctx.layout),
        extra_eval=generation_eval(recipe.eval, tok, recipe.seed),
        resume_from=ctx.resume_from,
    )
    return loop.run(job)
