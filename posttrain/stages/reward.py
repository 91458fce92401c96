"""Reward-model training: a causal LM's decoder with a scalar or per-attribute head.

    posttrain reward recipes/tiny/reward.yaml [--set reward.loss=scaled_bt] [--output-dir DIR]

reward.loss picks the objective (objectives/registry.py): bradley_terry -log sigma(r_w - r_l),
bt_margin -log sigma(r_w - r_l - m) with m from each row's reward.margin_field, scaled_bt
-m log sigma(r_w - r_l) with m in {1,2,3} from reward.strength_field, regression: squared error per
annotated attribute (reward.attributes, one head output each; rows as HelpSteer2 ships them).
model.path may be a causal LM (fresh head) or a reward model (its head kept unless
reward.reset_head or its size differs): HelpSteer2-Preference's best recipe is scaled_bt
initialised from a helpfulness-only regression model. final/ loads with
AutoModelForSequenceClassification; `posttrain reward-eval` and `posttrain score` use it.
"""

from __future__ import annotations

import functools

from posttrain.config.recipe import Recipe
from posttrain.data.chat import ensure_chat_template
from posttrain.data.plans import EpochPlan, eval_micro_batches
from posttrain.data.prepare import max_length_for, split_holdout
from posttrain.data.reward import (
    collate_rated,
    collate_reward_pairs,
    rated_responses,
    reward_pairs,
)
from posttrain.errors import UserError
from posttrain.model.load import context_length, load_tokenizer
from posttrain.model.reward_model import (
    RewardScores,
    head_labels,
    load_reward_model,
    reward_model_labels,
)
from posttrain.model.segment_mask import use_shared_prefix
from posttrain.objectives.registry import RewardLossSpec, get_reward_loss
from posttrain.objectives.reward_step import (
    PairwiseRewardObjective,
    RegressionRewardObjective,
)
from posttrain.train import loop
from posttrain.train.setup import RunContext, open_output_dir, run_layout


def run(recipe: Recipe, output_dir: str | None = None, resume: bool = False) -> dict[str, float]:
    spec = get_reward_loss(recipe.reward.loss)
    labels = head_labels(recipe.reward, spec.pairwise, reward_model_labels(recipe.model.path))
    ctx = _start_run(recipe, output_dir, resume, labels)
    recipe, tok, data = ctx.recipe, ctx.tokenizer, ctx.recipe.data
    max_len = max_length_for(data, context_length(ctx.model))
    units = functools.partial(_units, recipe, spec, tok, max_len)
    train = units(data.sources)
    held = units(data.eval_sources) if data.eval_sources else []
    if not held:
        train, held = split_holdout(train, data.eval_fraction, recipe.seed)
    collate = functools.partial(collate_rated, pad_id=tok.pad_token_id)
    if spec.pairwise:  # the prompt once per pair, as in posttrain dpo (preference.shared_prefix)
        shared = use_shared_prefix(ctx.model, recipe.preference.shared_prefix)
        collate = functools.partial(
            collate_reward_pairs,
            pad_id=tok.pad_token_id,
            shared=shared,
            pack_length=max_len if data.pack and shared else None,
        )
    lengths = [len(u) for u in train] if data.group_by_length else None
    plan = EpochPlan(train, collate, ctx.layout, recipe.seed, recipe.train.max_steps, recipe.train.epochs, lengths)
    score_index = labels.index(recipe.reward.score_attribute) if recipe.reward.score_attribute else 0
    objective = PairwiseRewardObjective(spec, score_index) if spec.pairwise else RegressionRewardObjective()
    job = loop.TrainJob(
        recipe=recipe,
        out_dir=ctx.out_dir,
        accelerator=ctx.accelerator,
        policy=RewardScores(ctx.model),
        tokenizer=tok,
        plan=plan,
        objective=objective,
        eval_batches=eval_micro_batches(held, collate, ctx.layout),
        resume_from=ctx.resume_from,
    )
    return loop.run(job)


def _units(recipe: Recipe, spec: RewardLossSpec, tokenizer, max_len: int, sources) -> list:
    """Training units of every source: pairs (pairwise losses) or rated responses (regression)."""
    if not sources:
        raise UserError("the recipe has no data sources (data.sources)")
    reward, on_error, max_bytes = recipe.reward, recipe.data.on_error, recipe.data.max_row_bytes
    if not spec.pairwise:
        return [
            u
            for s in sources
            for u in rated_responses(tokenizer, s, reward.attributes, max_len, on_error, max_row_bytes=max_bytes)
        ]
    margin = reward.margin_field if spec.needs_margins else None
    strength = reward.strength_field if spec.needs_strengths else None
    return [
        u
        for s in sources
        for u in reward_pairs(tokenizer, s, max_len, on_error, margin, strength, max_row_bytes=max_bytes)
    ]


def _start_run(recipe: Recipe, output_dir: str | None, resume: bool, labels: list[str]) -> RunContext:
    """train/setup.py's start_run with a sequence-classification model in place of the causal LM
    (loading the LM first would hold two copies of the weights)."""
    recipe, out_dir, accelerator, resume_from = open_output_dir(recipe, "reward", output_dir, resume)
    m = recipe.model
    tokenizer = load_tokenizer(m.path, m.revision, m.trust_remote_code)
    ensure_chat_template(tokenizer)
    model = load_reward_model(
        m, labels, tokenizer.pad_token_id, recipe.seed, recipe.adapter, recipe.reward.reset_head, resume_from
    )
    return RunContext(recipe, out_dir, accelerator, model, tokenizer, run_layout(recipe, accelerator), resume_from)
