"""Preference optimisation on chosen/rejected pairs: the DPO family, SimPO, CPO, ORPO, SELM.

    posttrain dpo recipes/tiny/dpo.yaml [--set preference.loss=simpo] [--set preference.beta=2.0]

The objective is chosen by name (preference.loss; objectives/registry.py lists them with their
papers). Reference log-probs are computed once before training from the initial policy (with
LoRA: the base with the adapter disabled) or from `preference.reference`, cached on disk, so no
second copy of the weights is held while training. SELM's reference-policy sample is generated
from the initial policy before training.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import torch

from posttrain.config import ModelConfig, Recipe
from posttrain.data.batching import Example
from posttrain.data.cache import cached_tensors
from posttrain.data.chat import ensure_chat_template, tokenize_prompt
from posttrain.data.plans import EpochPlan, eval_micro_batches
from posttrain.data.preference import PairExample, collate_pairs, tokenize_completion, tokenize_pairs
from posttrain.data.prepare import load_sources, max_length_for, split_holdout
from posttrain.errors import UserError
from posttrain.model.generate import GenerationConfig, generate_text
from posttrain.model.load import context_length, load_model, resolve_model_path
from posttrain.model.logprobs import TokenLogprobs
from posttrain.model.reference import pairs_fingerprint, precompute_reference_logps
from posttrain.objectives.pairwise import PairwiseObjective
from posttrain.objectives.preference import PreferenceConfig
from posttrain.objectives.registry import LossSpec, get_preference_loss
from posttrain.train import loop
from posttrain.train.periodic_eval import generation_eval
from posttrain.train.setup import RunContext, start_run


def run(recipe: Recipe, output_dir: str | None = None, resume: bool = False) -> dict[str, float]:
    spec = get_preference_loss(recipe.preference.loss)
    if not spec.paired:
        raise UserError(f"preference.loss '{spec.name}' takes unpaired data: use `posttrain kto`")
    cfg = _preference_config(recipe)
    ctx = start_run(recipe, "dpo", output_dir, resume)
    tok, data = ctx.tokenizer, ctx.recipe.data
    ensure_chat_template(tok)
    max_len = max_length_for(data, context_length(ctx.model))

    def pairs_of(sources):
        loaded = load_sources(sources, "preference", data.on_error)
        return [p for part in loaded
                for p in tokenize_pairs(tok, part, max_len, data.on_error, spec.needs_rewards)]

    train = pairs_of(data.sources)
    held = pairs_of(data.eval_sources) if data.eval_sources else []
    if not held:
        train, held = split_holdout(train, data.eval_fraction, recipe.seed)
    if spec.needs_reference_sample:
        _add_reference_samples(ctx, train + held, max_len)
    if spec.needs_reference or spec.needs_rewards:
        # REBEL's "old policy" (the one that sampled the pairs) is the initial policy here.
        _reference_logps(ctx, spec, train + held)
    collate = functools.partial(collate_pairs, pad_id=tok.pad_token_id)
    lengths = [len(p) for p in train] if data.group_by_length else None
    plan = EpochPlan(train, collate, ctx.layout, ctx.recipe.seed, ctx.recipe.train.max_steps,
                     ctx.recipe.train.epochs, lengths)
    job = loop.TrainJob(
        recipe=ctx.recipe, out_dir=ctx.out_dir, accelerator=ctx.accelerator, model=ctx.model,
        policy=TokenLogprobs(ctx.model, ctx.recipe.train.logprob_chunk_size), tokenizer=tok,
        plan=plan, objective=PairwiseObjective(spec, cfg),
        eval_batches=eval_micro_batches(held, collate, ctx.layout),
        extra_eval=generation_eval(ctx.recipe.eval, tok), resume_from=ctx.resume_from)
    return loop.run(job)


def _preference_config(recipe: Recipe) -> PreferenceConfig:
    fields = {f.name for f in dataclasses.fields(PreferenceConfig)}
    return PreferenceConfig(**{k: v for k, v in recipe.preference.model_dump().items() if k in fields})


def _add_reference_samples(ctx: RunContext, pairs: list[PairExample], max_len: int) -> None:
    """SELM: one response per prompt sampled from the reference policy (the initial model)."""
    p = ctx.recipe.preference
    gen = GenerationConfig(max_new_tokens=p.sample_max_new_tokens, temperature=p.sample_temperature,
                           seed=ctx.recipe.seed, batch_size=ctx.recipe.train.micro_batch_size)
    model = _initial_policy(ctx)
    texts = generate_text(model, ctx.tokenizer, [tokenize_prompt(ctx.tokenizer, x.prompt) for x in pairs], gen)
    for pair, text in zip(pairs, texts):
        sample = tokenize_completion(ctx.tokenizer, pair.prompt, [{"role": "assistant", "content": text}])
        # A sample may run past the context: it is cut there rather than dropped.
        pair.ref_sample = Example(sample.input_ids[:max_len], sample.labels[:max_len])


def _initial_policy(ctx: RunContext):
    """The model as it was before training: the policy itself on a fresh run (LoRA: the adapter
    is still zero), or freshly loaded when resuming a full fine-tuning run."""
    if ctx.resume_from is None or hasattr(ctx.model, "disable_adapter"):
        return ctx.model
    return load_model(ctx.recipe.model, ctx.recipe.seed)


def _reference_logps(ctx: RunContext, spec: LossSpec, pairs: list[PairExample]) -> None:
    ref_path = ctx.recipe.preference.reference
    key = pairs_fingerprint(pairs, _model_identity(ref_path or ctx.recipe.model.path, ctx.recipe))

    def compute() -> dict[str, torch.Tensor]:
        model = load_model(ModelConfig(path=ref_path, dtype=ctx.recipe.model.dtype)) if ref_path else None
        device = ctx.accelerator.device
        if model is not None:
            precompute_reference_logps(model.to(device), pairs, ctx.tokenizer.pad_token_id,
                                       ctx.recipe.train.micro_batch_size, device)
        elif hasattr(ctx.model, "disable_adapter"):
            with ctx.model.disable_adapter():  # LoRA: the base model is the reference
                precompute_reference_logps(ctx.model.to(device), pairs, ctx.tokenizer.pad_token_id,
                                           ctx.recipe.train.micro_batch_size, device)
        else:
            precompute_reference_logps(_initial_policy(ctx).to(device), pairs,
                                       ctx.tokenizer.pad_token_id, ctx.recipe.train.micro_batch_size,
                                       device)
        return {k: torch.tensor([p.ref_logps[k] for p in pairs]) for k in pairs[0].ref_logps}

    for name, values in cached_tensors(key, compute).items():
        for pair, value in zip(pairs, values.tolist()):
            pair.ref_logps[name] = value


def _model_identity(path: str, recipe: Recipe) -> str:
    """What the reference's log-probs depend on: the weights' location and, for a local
    directory, the size and time of its weight files."""
    resolved = Path(resolve_model_path(path))
    stamp = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(resolved.glob("*.safetensors"))]
    return repr((str(resolved), recipe.model.revision, recipe.model.dtype, recipe.model.init,
                 recipe.seed if recipe.model.init == "random" else None, stamp))
