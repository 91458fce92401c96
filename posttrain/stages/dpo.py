"""Preference optimisation on chosen/rejected pairs: the DPO family, SimPO, CPO, ORPO, SELM, LOGO.

    posttrain dpo recipes/tiny/dpo.yaml [--set preference.loss=simpo] [--set preference.beta=2.0]
    posttrain dpo recipes/tiny/logo.yaml    # several rejected responses per prompt

The objective is chosen by name (preference.loss; objectives/registry.py lists them with their
papers). Reference log-probs are computed once before training from the initial policy (with
LoRA: the base with the adapter disabled) or from `preference.reference`, cached on disk, so no
second copy of the weights is held while training. Each pair is scored in one row, its prompt
computed once (preference.shared_prefix, data/shared_prefix.py); data.pack puts several pairs of
a micro-batch in a row of up to data.max_length tokens. SELM's reference-policy sample is generated
from the initial policy before training.
"""

from __future__ import annotations

import functools
import logging

from posttrain.config.recipe import Recipe
from posttrain.data import pointless
from posttrain.data.batching import Example
from posttrain.data.chat import ensure_chat_template, tokenize_prompt
from posttrain.data.plans import EpochPlan, eval_micro_batches
from posttrain.data.preference import (
    PairExample,
    collate_pairs,
    synthesize_positions,
    tokenize_completion,
    tokenize_pairs,
)
from posttrain.data.prepare import load_sources, max_length_for, split_holdout
from posttrain.errors import UserError
from posttrain.model.generate import GenerationConfig, generate_text
from posttrain.model.load import context_length
from posttrain.model.logprobs import TokenLogprobs
from posttrain.model.segment_mask import use_shared_prefix
from posttrain.objectives.pairwise import PairwiseObjective, preference_config
from posttrain.objectives.registry import get_preference_loss
from posttrain.train import loop
from posttrain.train.periodic_eval import generation_eval
from posttrain.train.reference import attach_reference_logps, initial_policy
from posttrain.train.setup import RunContext, start_run

logger = logging.getLogger(__name__)


def run(recipe: Recipe, output_dir: str | None = None, resume: bool = False) -> dict[str, float]:
    spec = get_preference_loss(recipe.preference.loss)
    if not spec.paired:
        raise UserError(f"preference.loss '{spec.name}' takes unpaired data: use `posttrain kto`")
    cfg = preference_config(recipe.preference)
    ctx = start_run(recipe, "dpo", output_dir, resume)
    tok, data = ctx.tokenizer, ctx.recipe.data
    ensure_chat_template(tok)
    max_len = max_length_for(data, context_length(ctx.model))

    def pairs_of(sources):
        loaded = load_sources(sources, "preference", data.on_error, data.max_row_bytes)
        for part in loaded:
            pointless.identical_pairs(part.path, ((r.chosen, r.rejected) for r in part.records))
        return [p for part in loaded for p in tokenize_pairs(tok, part, max_len, data.on_error, spec.needs_rewards)]

    train = pairs_of(data.sources)
    held = pairs_of(data.eval_sources) if data.eval_sources else []
    _check_listwise(spec, recipe, train + held)
    if recipe.preference.position_synthesis_length:
        synthesize_positions(
            train + held, recipe.preference.position_synthesis_length, recipe.preference.position_chunks, recipe.seed
        )
    if not held:
        train, held = split_holdout(train, data.eval_fraction, recipe.seed)
    if spec.needs_reference_sample:
        _add_reference_samples(ctx, train + held, max_len)
    shared = use_shared_prefix(ctx.model, recipe.preference.shared_prefix)
    if data.pack and not shared:
        logger.warning("data.pack: pairs are packed only in the shared-prefix layout; not packing")
    collate = functools.partial(
        collate_pairs, pad_id=tok.pad_token_id, shared=shared, pack_length=max_len if data.pack and shared else None
    )
    if spec.needs_reference or spec.needs_rewards:
        # REBEL's "old policy" (the one that sampled the pairs) is the initial policy here.
        attach_reference_logps(
            ctx, train + held, collate, ("chosen", "rejected", "ref_sample"), ("chosen", "rejected", "ref_sample")
        )
    lengths = [len(p) for p in train] if data.group_by_length else None
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
        objective=PairwiseObjective(spec, cfg),
        eval_batches=eval_micro_batches(held, collate, ctx.layout),
        extra_eval=generation_eval(ctx.recipe.eval, tok, ctx.recipe.seed),
        resume_from=ctx.resume_from,
    )
    return loop.run(job)


def _check_listwise(spec, recipe: Recipe, pairs: list[PairExample]) -> None:
    """Several rejected responses per prompt and synthetic positions are LOGO's; other objectives
    would silently drop the extra responses, and reference log-probs are taken at plain positions."""
    if spec.name != "logo" and any(p.more_rejected for p in pairs):
        raise UserError(
            f"preference.loss '{spec.name}' takes one rejected response per prompt, but the data "
            "gives several (`rejected` as a list): use preference.loss: logo"
        )
    if recipe.preference.position_chunks < 1:
        raise UserError(f"preference.position_chunks must be >= 1, got {recipe.preference.position_chunks}")
    if recipe.preference.position_synthesis_length and (spec.needs_reference or spec.needs_rewards):
        raise UserError(
            f"preference.position_synthesis_length needs a reference-free loss (logo, simpo, cpo, "
            f"orpo), not '{spec.name}'"
        )


def _add_reference_samples(ctx: RunContext, pairs: list[PairExample], max_len: int) -> None:
    """SELM: one response per prompt sampled from the reference policy (the initial model)."""
    p = ctx.recipe.preference
    gen = GenerationConfig(
        max_new_tokens=p.sample_max_new_tokens,
        temperature=p.sample_temperature,
        seed=ctx.recipe.seed,
        batch_size=ctx.recipe.train.micro_batch_size,
    )
    model = initial_policy(ctx)
    texts = generate_text(model, ctx.tokenizer, [tokenize_prompt(ctx.tokenizer, x.prompt) for x in pairs], gen)
    for pair, text in zip(pairs, texts):
        sample = tokenize_completion(ctx.tokenizer, pair.prompt, [{"role": "assistant", "content": text}])
        # A sample may run past the context: it is cut there rather than dropped.
        pair.ref_sample = Example(sample.input_ids[:max_len], sample.labels[:max_len])
