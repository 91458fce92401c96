"""Logit distillation: the student learns the teacher's next-token distributions on the data's
assistant tokens.

    posttrain distill recipes/tiny/distill.yaml [--set distill.loss=jsd] [--set distill.top_k=32]

Loss (objectives/distill.py): forward KL, reverse KL or generalised JSD (beta) per loss token,
summed and normalised by the loss tokens of the whole optimizer step, as SFT's NLL is. The teacher
runs on the fly on each micro-batch (its decoder once, its head chunk by chunk), or, with
distill.top_k, once before training into a memory-mapped top-k cache (model/teacher_cache.py),
after which it is freed.

GKD (Agarwal et al. 2024): with distill.lmbda > 0, each optimizer step is, with probability lmbda
(seeded by the step, so a resume replays it), on-policy: every row's response is replaced by one
the student samples from its current weights (through the evaluation engine's HF backend, as GRPO's
rollouts are), for the row's first prompt, and the teacher scores those tokens on the fly.
Sequence-level distillation is `posttrain sample` (teacher outputs) followed by `posttrain sft`.
"""

from __future__ import annotations

import functools
import hashlib
import random
from dataclasses import dataclass

import torch

from posttrain.config.recipe import ModelConfig, Recipe
from posttrain.data.batching import IGNORE, Example, collate_padded
from posttrain.data.chat import ensure_chat_template
from posttrain.data.plans import EpochPlan, eval_micro_batches
from posttrain.data.prepare import (
    check_sources,
    conversation_examples,
    max_length_for,
    split_holdout,
)
from posttrain.errors import UserError
from posttrain.generation.backend import GenerationRequest, HFBackend
from posttrain.model.distill_head import (
    DistillPolicy,
    TeacherFromCache,
    TeacherOnTheFly,
)
from posttrain.model.load import context_length, load_model, load_tokenizer
from posttrain.model.paths import resolve_model_path
from posttrain.model.teacher_cache import TopkCache, write_topk_cache
from posttrain.objectives.distill import beta_for
from posttrain.train import loop
from posttrain.train.periodic_eval import generation_eval
from posttrain.train.setup import start_run


@dataclass
class DistillUnit:
    example: Example
    index: int  # row block of the teacher cache

    def __len__(self) -> int:
        return len(self.example)


class DistillObjective:
    """Divergence summed over loss tokens; the loss unit is a loss token (as SFT's)."""

    def __init__(self, teacher, beta: float, temperature: float):
        self.teacher, self.beta, self.temperature = teacher, beta, temperature

    def weight(self, mb: dict[str, torch.Tensor]) -> int:
        return int((mb["labels"][:, 1:] != IGNORE).sum())

    def loss(self, policy, mb: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return policy(mb, self.teacher, self.beta, self.temperature), {}


def check_teacher(recipe: Recipe) -> None:
    """Before any weights load: a teacher is named and shares the student's tokenizer."""
    cfg = recipe.distill
    if not cfg.teacher:
        raise UserError("posttrain distill needs distill.teacher: the teacher's model directory")
    if recipe.data.pack:
        raise UserError("data.pack: distillation trains on padded conversations; set data.pack: false")
    student, teacher = load_tokenizer(recipe.model.path), load_tokenizer(cfg.teacher)
    if student.get_vocab() != teacher.get_vocab():
        raise UserError(
            f"distill.teacher {cfg.teacher}: its tokenizer differs from the student's "
            f"({len(teacher)} vs {len(student)} tokens or different ids); logit "
            f"distillation needs one vocabulary"
        )


def _collate(units: list[DistillUnit], pad_id: int, cache: TopkCache | None) -> dict[str, torch.Tensor]:
    mb = collate_padded([u.example for u in units], pad_id)
    if cache is not None:
        mb["teacher_ids"], mb["teacher_logps"] = cache.rows_for([u.index for u in units])
    return mb


def run(recipe: Recipe, output_dir: str | None = None, resume: bool = False) -> dict[str, float]:
    check_teacher(recipe)
    ctx = start_run(recipe, "distill", output_dir, resume)
    recipe, tok, data, cfg = ctx.recipe, ctx.tokenizer, ctx.recipe.data, ctx.recipe.distill
    ensure_chat_template(tok)
    max_len = max_length_for(data, context_length(ctx.model))

    def examples(sources):
        check_sources(sources, "conversation")
        return [ex for s in sources for ex in conversation_examples(tok, s, max_len, data.on_error, data.max_row_bytes)]

    train = examples(data.sources)
    held = examples(data.eval_sources) if data.eval_sources else []
    if not held:
        train, held = split_holdout(train, data.eval_fraction, recipe.seed)
    device = ctx.accelerator.device
    teacher_model = load_model(ModelConfig(path=cfg.teacher, dtype=recipe.model.dtype)).to(device)
    student_rows = ctx.model.get_output_embeddings().weight.shape[0]
    if teacher_model.get_output_embeddings().weight.shape[0] != student_rows:
        raise UserError(
            f"distill.teacher {cfg.teacher}: its LM head has "
            f"{teacher_model.get_output_embeddings().weight.shape[0]} rows, the student's "
            f"{student_rows}; logit distillation needs one vocabulary"
        )
    units = [DistillUnit(ex, i) for i, ex in enumerate(train + held)]
    cache = None
    if cfg.top_k:
        identity = hashlib.sha256(str(resolve_model_path(cfg.teacher)).encode()).hexdigest()[:16]
        cache_dir = write_topk_cache(
            teacher_model,
            train + held,
            ctx.out_dir / "teacher_topk",
            cfg.top_k,
            cfg.temperature,
            identity,
            tok.pad_token_id,
            recipe.train.micro_batch_size,
            recipe.train.logprob_chunk_size,
        )
        cache, teacher = TopkCache(cache_dir), TeacherFromCache()
        del teacher_model  # the cache replaces it: no second model in memory while training
    else:
        teacher = TeacherOnTheFly(teacher_model, cfg.temperature)
    collate = functools.partial(_collate, pad_id=tok.pad_token_id, cache=cache)
    plan = EpochPlan(units[: len(train)], collate, ctx.layout, recipe.seed, recipe.train.max_steps, recipe.train.epochs)
    if cfg.lmbda > 0:
        backend = HFBackend(
            ctx.model, tok, batch_size=recipe.train.micro_batch_size, seed=recipe.seed, show_progress=False
        )
        plan = OnPolicyMixture(plan, backend, tok.pad_token_id, recipe)
    job = loop.TrainJob(
        recipe=recipe,
        out_dir=ctx.out_dir,
        accelerator=ctx.accelerator,
        policy=DistillPolicy(ctx.model, recipe.train.logprob_chunk_size),
        tokenizer=tok,
        plan=plan,
        objective=DistillObjective(teacher, beta_for(cfg.loss, cfg.beta), cfg.temperature),
        eval_batches=eval_micro_batches(units[len(train) :], collate, ctx.layout),
        extra_eval=generation_eval(recipe.eval, tok, recipe.seed),
        resume_from=ctx.resume_from,
    )
    return loop.run(job)


class OnPolicyMixture:
    """GKD's data: the fixed plan's micro-batches, or on a step drawn with probability lmbda, the
    same prompts answered by the student's own samples (see the module docstring)."""

    def __init__(self, plan: EpochPlan, backend: HFBackend, pad_id: int, recipe: Recipe):
        self.plan, self.backend, self.pad_id, self.recipe = plan, backend, pad_id, recipe
        self.total_steps = plan.total_steps

    def on_policy(self, step: int) -> bool:
        return random.Random(f"{self.recipe.seed}/gkd/{step}").random() < self.recipe.distill.lmbda

    def steps(self, start: int = 0):
        for step, micro_batches in enumerate(self.plan.steps(start), start):
            yield [self._sampled(mb, step) for mb in micro_batches] if self.on_policy(step) else micro_batches

    def _sampled(self, mb: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        cfg, prompts, ends = self.recipe.distill, [], []
        for ids, labels in zip(mb["input_ids"].tolist(), mb["labels"].tolist()):
            trained = [t for t, label in enumerate(labels) if label != IGNORE]
            prompts.append(ids[: trained[0]])
            ends.append(labels[trained[-1]])  # the turn-end token the template closes a response with
        requests = [GenerationRequest(p, cfg.max_new_tokens, temperature=cfg.sample_temperature) for p in prompts]
        completions = self.backend.generate_tokens(requests, seed=self.recipe.seed * 100_003 + step)
        examples = []
        for prompt, completion, end in zip(prompts, completions, ends):
            response = completion + [end] if len(completion) < cfg.max_new_tokens else completion
            examples.append(Example(prompt + response, [IGNORE] * len(prompt) + response))
        return collate_padded(examples, self.pad_id)
