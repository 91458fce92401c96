"""Continual pre-training on raw text, from one source or a weighted mixture with curriculum phases.

    posttrain pretrain recipes/tiny/pretrain.yaml [--set train.max_steps=200] [--resume]

Documents (BOS + text + EOS) are packed into rows of data.max_length tokens with per-document
position ids, so no token attends across a document boundary.
"""

from __future__ import annotations

import functools
import math

from posttrain.config.recipe import Recipe
from posttrain.data.batching import Example, collate_packed, pack_examples
from posttrain.data.mixtures import mixture_rows
from posttrain.data.plans import StreamPlan, eval_micro_batches
from posttrain.data.prepare import (
    check_sources,
    max_length_for,
    split_holdout,
    text_documents,
)
from posttrain.errors import UserError
from posttrain.model.load import context_length
from posttrain.model.logprobs import TokenLogprobs
from posttrain.objectives.sft import NextTokenObjective
from posttrain.train import loop
from posttrain.train.periodic_eval import generation_eval
from posttrain.train.setup import start_run


def run(recipe: Recipe, output_dir: str | None = None, resume: bool = False) -> dict[str, float]:
    ctx = start_run(recipe, "pretrain", output_dir, resume)
    recipe, tok, data = ctx.recipe, ctx.tokenizer, ctx.recipe.data
    if data.pack is False:
        raise UserError("pretrain packs documents; data.pack: false is only meaningful for sft")
    length = max_length_for(data, context_length(ctx.model))
    check_sources(data.sources, "text")
    docs = {s.key: text_documents(tok, s, data.on_error, data.max_row_bytes) for s in data.sources}
    held: list[list[int]] = []
    if data.eval_sources:
        held = [d for s in data.eval_sources for d in text_documents(tok, s, data.on_error, data.max_row_bytes)]
    elif data.eval_fraction > 0:
        for key in docs:
            docs[key], held_part = split_holdout(docs[key], data.eval_fraction, recipe.seed)
            held += held_part
    schedule = _schedule(recipe)
    G = ctx.layout.global_batch
    total_steps = recipe.train.max_steps or _steps_for_epochs(docs, recipe.train.epochs, G, length)
    make_stream = functools.partial(mixture_rows, docs, schedule, G, length, recipe.seed)
    collate = functools.partial(collate_packed, pad_id=tok.pad_token_id, length=length)
    plan = StreamPlan(make_stream, collate, ctx.layout, total_steps)
    job = loop.TrainJob(
        recipe=recipe,
        out_dir=ctx.out_dir,
        accelerator=ctx.accelerator,
        policy=TokenLogprobs(ctx.model, recipe.train.logprob_chunk_size),
        tokenizer=tok,
        plan=plan,
        objective=NextTokenObjective(),
        eval_batches=eval_micro_batches(_eval_rows(held, length), collate, ctx.layout),
        extra_eval=generation_eval(recipe.eval, tok, recipe.seed),
        resume_from=ctx.resume_from,
    )
    return loop.run(job)


def _schedule(recipe: Recipe) -> list[tuple[int | None, dict[str, float]]]:
    """Phases from the recipe, or one phase with the sources' own weights."""
    if recipe.data.phases:
        return [(p.steps, p.weights) for p in recipe.data.phases]
    return [(None, {s.key: s.weight for s in recipe.data.sources})]


def _steps_for_epochs(docs: dict[str, list[list[int]]], epochs: float, global_batch: int, length: int) -> int:
    tokens = sum(len(d) for part in docs.values() for d in part)
    return max(1, math.ceil(epochs * tokens / (global_batch * length)))


def _eval_rows(held: list[list[int]], length: int):
    """Held-out documents cut to the row length and packed whole, in order."""
    pieces = [doc[i : i + length] for doc in held for i in range(0, len(doc), length)]
    return pack_examples([Example(p, list(p)) for p in pieces], length)
