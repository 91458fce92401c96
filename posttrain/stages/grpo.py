"""Online RL with verifiable rewards: GRPO and RLOO, and PPO with a value function (train/ppo.py).

    posttrain grpo recipes/tiny/grpo.yaml [--set grpo.advantage=rloo] [--set grpo.kl_coef=0.05]
    posttrain grpo recipes/tiny/ppo.yaml      (grpo.algorithm: ppo)

Each batch of samples: P prompts (grpo.prompts_per_step), G completions each (grpo.group_size)
sampled from the current policy, scored by the recipe's reward terms (posttrain/rewards), turned
into group advantages, then mu = grpo.updates_per_batch optimizer steps on that batch with the
clipped objective (objectives/policy_gradient.py). The rollouts are made lazily inside the plan's
generator, so they always come from the weights the loop has just updated.

Where this departs from the papers, and why:
- GRPO's KL term is against the initial model, not a moving reference. With LoRA the reference
  is the base with the adapter disabled; with full fine-tuning a frozen copy of the weights is
  held, only when grpo.kl_coef > 0: unlike DPO, the reference must score fresh samples at every
  step, so its log-probs cannot be precomputed.
- With mu = 1 (the default) no old-policy forward is run: the ratio is exactly 1 and the
  objective's gradient is the policy gradient (plus KL). With mu > 1 the old log-probs are
  computed once per batch, before its first update.
- Rollouts go through the evaluation engine's backends (generation/backend.py): HF generate on the
  training model itself (default), or vLLM (grpo.backend: vllm, GPU) colocated in the training
  process, its weights replaced by the policy's before every batch of rollouts.
- grpo.no_eos_reward replaces the total reward of a completion that hit max_new_tokens without a
  stop token (Tulu 3's RLVR uses -10); unset, such a completion is scored like any other.
- data.pack: true scores each group's completions in one row after their prompt (data/rollout_layout.py),
  the same log-probs and values with the prompt computed once.
- Exact resume: sampling is seeded from (seed, batch, rank) and the prompt order from (seed,
  epoch). A resume in the middle of a batch's mu updates regenerates that batch from the
  resumed weights (not the old policy's): save at multiples of mu for an exact continuation.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import math
import random
from contextlib import nullcontext

import torch

from posttrain.config.recipe import Recipe
from posttrain.data import pointless
from posttrain.data.batching import IGNORE
from posttrain.data.chat import (
    ensure_chat_template,
    tokenize_conversation,
    tokenize_prompt,
)
from posttrain.data.prepare import load_sources, max_length_for
from posttrain.data.problems import RowProblems
from posttrain.data.rollout_layout import group_layout, rollout_forward
from posttrain.data.sources import validated_rows
from posttrain.errors import UserError
from posttrain.generation.backend import GenerationRequest, HFBackend
from posttrain.model.adapters import adapter_base, is_adapter_dir
from posttrain.model.generate import padding_id, stop_token_ids
from posttrain.model.load import context_length
from posttrain.model.logprobs import TokenLogprobs, token_logprobs
from posttrain.model.segment_mask import use_segment_packing
from posttrain.objectives.policy_gradient import (
    PolicyGradientObjective,
    group_advantages,
)
from posttrain.rewards import RewardSet, build_reward_set
from posttrain.train import loop
from posttrain.train.periodic_eval import generation_eval
from posttrain.train.ppo import ppo_parts
from posttrain.train.reference import initial_policy
from posttrain.train.setup import RunContext, start_run

log = logging.getLogger(__name__)


def run(recipe: Recipe, output_dir: str | None = None, resume: bool = False) -> dict[str, float]:
    cfg = recipe.grpo
    if recipe.train.grad_accum_steps != 1:
        raise UserError(
            "grpo: leave train.grad_accum_steps at 1; a step's size is "
            "grpo.prompts_per_step x grpo.group_size, cut into train.micro_batch_size rows"
        )
    rewards = build_reward_set(cfg.rewards)
    pointless.zero_advantages(cfg.group_size, cfg.advantage)
    ctx = start_run(recipe, "grpo", output_dir, resume)
    ensure_chat_template(ctx.tokenizer)
    prompts, samples = load_prompts(ctx)
    pointless.rewards_without_reference([term.name for term in cfg.rewards], samples)
    if cfg.prompts_per_step % ctx.accelerator.num_processes:
        raise UserError(
            f"grpo.prompts_per_step ({cfg.prompts_per_step}) must be a multiple of "
            f"the number of processes ({ctx.accelerator.num_processes})"
        )
    plan = RolloutPlan(ctx, prompts, samples, rewards, reference_model(ctx), rollout_backend(ctx))
    if cfg.algorithm == "ppo":  # the same rollouts, scored per token by a value function
        policy, plan, objective = ppo_parts(ctx, plan)
    else:
        policy = TokenLogprobs(ctx.model, ctx.recipe.train.logprob_chunk_size)
        objective = PolicyGradientObjective(
            eps_low=cfg.clip_eps,
            eps_high=cfg.clip_eps if cfg.clip_eps_high is None else cfg.clip_eps_high,
            aggregation=cfg.aggregation,
            kl_coef=cfg.kl_coef,
            kl_kind=cfg.kl_estimator,
            ignore_index=IGNORE,
            max_length=cfg.max_new_tokens,
        )
    job = loop.TrainJob(
        recipe=ctx.recipe,
        out_dir=ctx.out_dir,
        accelerator=ctx.accelerator,
        policy=policy,
        tokenizer=ctx.tokenizer,
        plan=plan,
        objective=objective,
        extra_eval=generation_eval(ctx.recipe.eval, ctx.tokenizer, ctx.recipe.seed),
        resume_from=ctx.resume_from,
    )
    return loop.run(job)


def load_prompts(ctx: RunContext) -> tuple[list[list[int]], list[dict]]:
    """Prompt token ids and, for the reward functions, each full data row (+ prompt, reference)."""
    data, tok = ctx.recipe.data, ctx.tokenizer
    room = max_length_for(data, context_length(ctx.model)) - ctx.recipe.grpo.max_new_tokens
    prompts, samples = [], []
    loaded_sources = load_sources(data.sources, "prompt", data.on_error, data.max_row_bytes)
    for source, loaded in zip(data.sources, loaded_sources):
        raw = dict(validated_rows(source.path, source.split, data.on_error))
        problems, kept = RowProblems(source.path, data.on_error), len(prompts)
        for number, record in zip(loaded.rows, loaded.records):
            ids = tokenize_prompt(tok, record.prompt)
            if len(ids) > room:
                problems.add(
                    number,
                    "prompt",
                    f"{len(ids)} tokens leave no room for "
                    f"grpo.max_new_tokens in {room + ctx.recipe.grpo.max_new_tokens} "
                    "(raise data.max_length or set data.on_error: skip)",
                )
                continue
            row = {source.columns.get(k, k): v for k, v in raw[number].items()}
            prompts.append(ids)
            samples.append({**row, "prompt": record.prompt, "reference": record.reference})
        problems.finish(len(prompts) - kept, "prompts")
    return prompts, samples


def reference_model(ctx: RunContext):
    """The KL reference (the initial policy), or None without a KL term."""
    if ctx.recipe.grpo.kl_coef <= 0 or hasattr(ctx.model, "disable_adapter"):
        return None  # LoRA: RolloutPlan disables the adapter instead of holding a copy
    ref = initial_policy(ctx)
    ref = copy.deepcopy(ref) if ref is ctx.model else ref
    return ref.to(ctx.accelerator.device).eval().requires_grad_(False)


def rollout_backend(ctx: RunContext):
    """The engine that samples completions: HF generate on the training model itself, or a vLLM
    engine in this process that sync_weights keeps equal to the policy."""
    cfg, model_cfg = ctx.recipe.grpo, ctx.recipe.model
    if cfg.backend == "hf":
        return HFBackend(
            ctx.model, ctx.tokenizer, batch_size=cfg.generation_batch_size, seed=ctx.recipe.seed, show_progress=False
        )
    if ctx.recipe.train.distributed == "fsdp" and ctx.accelerator.num_processes > 1:
        raise UserError(
            "grpo.backend: vllm works with one process or DDP, not FSDP-sharded weights; "
            "set train.distributed: ddp or grpo.backend: hf"
        )
    from posttrain.generation.vllm_backend import VLLMBackend

    path = model_cfg.path  # the engine needs a full model: an adapter's base (weights are synced anyway)
    return VLLMBackend(
        adapter_base(path) if is_adapter_dir(path) else path,
        tokenizer=ctx.tokenizer,
        seed=ctx.recipe.seed,
        dtype="auto" if model_cfg.dtype == "float32" else model_cfg.dtype,
        gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
    )


class RolloutPlan:
    """Per optimizer step, this process's micro-batches of scored completions (see module doc)."""

    def __init__(
        self, ctx: RunContext, prompts: list[list[int]], samples: list[dict], rewards: RewardSet, reference, backend
    ):
        self.ctx, self.cfg, self.prompts, self.samples = ctx, ctx.recipe.grpo, prompts, samples
        self.rewards, self.reference, self.backend = rewards, reference, backend
        train = ctx.recipe.train
        batches = math.ceil(train.epochs * len(prompts) / self.cfg.prompts_per_step)
        self.total_steps = train.max_steps or max(1, batches) * self.cfg.updates_per_batch
        eos_ids = stop_token_ids(ctx.model, ctx.tokenizer)
        self.turn_end = turn_end_id(ctx.tokenizer, eos_ids)
        self.pad_id = padding_id(ctx.tokenizer, eos_ids)
        # data.pack: a group's completions scored as one row, the prompt once (data/rollout_layout.py)
        self.share_prompts = use_segment_packing(ctx.model, ctx.recipe.data.pack, "grpo")

    def steps(self, start: int = 0):
        mu, cached = self.cfg.updates_per_batch, (None, None)
        for step in range(start, self.total_steps):
            batch = step // mu
            if cached[0] != batch:
                cached = (batch, self._rollout(batch, write_samples=self._samples_due(step)))
            yield cached[1]

    def _samples_due(self, step: int) -> bool:
        every = self.cfg.samples_every
        return bool(every) and step % every == 0 and self.ctx.accelerator.is_main_process

    def prompt_indices(self, batch: int) -> list[int]:
        """This process's prompts of a batch: a slice of epoch-wise seeded permutations."""
        n, per_step, acc = len(self.prompts), self.cfg.prompts_per_step, self.ctx.accelerator
        local = per_step // acc.num_processes
        first = batch * per_step + acc.process_index * local
        return [self._epoch_order(k // n)[k % n] for k in range(first, first + local)]

    @functools.lru_cache(maxsize=2)  # noqa: B019  (one stage object per run: the cache lives as long anyway)
    def _epoch_order(self, epoch: int) -> list[int]:
        order = list(range(len(self.prompts)))
        random.Random(f"{self.ctx.recipe.seed}/grpo/epoch/{epoch}").shuffle(order)
        return order

    def _rollout(self, batch: int, write_samples: bool) -> list[dict[str, torch.Tensor]]:
        indices, group = self.prompt_indices(batch), self.cfg.group_size
        prompts = [self.prompts[i] for i in indices for _ in range(group)]
        samples = [self.samples[i] for i in indices for _ in range(group)]
        completions = self._sample(batch, prompts)
        texts = self.ctx.tokenizer.batch_decode(completions, skip_special_tokens=True)
        finished = torch.tensor([len(c) < self.cfg.max_new_tokens for c in completions])
        scores = self.rewards.score_all(samples, texts)
        totals = torch.tensor([self.rewards.total(s) for s in scores])
        if self.cfg.no_eos_reward is not None:
            totals = torch.where(finished, totals, torch.tensor(self.cfg.no_eos_reward))
        totals, nonfinite = screen_rewards(totals, group, batch)
        advantages = group_advantages(totals.view(-1, group), self.cfg.advantage).view(-1)
        advantages = advantages.masked_fill(nonfinite, 0.0)  # learn nothing from a broken score
        rows = [
            (p, c + [self.turn_end] if done else c)  # a finished completion learns to stop
            for p, c, done in zip(prompts, completions, finished.tolist())
        ]
        stats = self._row_stats(scores, totals, [len(c) for _, c in rows])
        stats["stat/truncated"] = (~finished).float()
        stats["stat/nonfinite_reward"] = nonfinite.float()  # its sum over a step: the count
        if write_samples:
            self._write_samples(batch, samples, texts, totals)
        size = self.ctx.recipe.train.micro_batch_size
        cut = {k: v.split(size) for k, v in [("advantages", advantages), *stats.items()]}
        group_of = [j // group for j in range(len(rows))]
        return [
            self._micro_batch(
                rows[i * size : (i + 1) * size], {k: v[i] for k, v in cut.items()}, group_of[i * size : (i + 1) * size]
            )
            for i in range(len(cut["advantages"]))
        ]

    def _sample(self, batch: int, prompts: list[list[int]]) -> list[list[int]]:
        """Completion ids (stop token dropped) from the policy's current weights, seeded per batch."""
        requests = [
            GenerationRequest(prompt, self.cfg.max_new_tokens, temperature=self.cfg.temperature, top_p=self.cfg.top_p)
            for prompt in prompts
        ]
        self.backend.sync_weights(self.ctx.model)  # HF: the same object, nothing to copy
        seed = hash_seed(self.ctx.recipe.seed, batch, self.ctx.accelerator.process_index)
        return self.backend.generate_tokens(requests, seed=seed)

    def _row_stats(self, scores: list[dict], totals: torch.Tensor, lengths: list[int]) -> dict:
        stats = {f"stat/reward/{label}": torch.tensor([s[label] for s in scores]) for label in scores[0]}
        stats["stat/reward"] = totals
        stats["stat/accuracy"] = torch.tensor([float(self.rewards.correct(s)) for s in scores])
        stats["stat/response_length"] = torch.tensor(lengths, dtype=torch.float32)
        return stats

    def _micro_batch(self, rows, per_row: dict[str, torch.Tensor], group_of: list[int]) -> dict[str, torch.Tensor]:
        """Right-padded ids, labels on the completion (+ its stop token), the rows' advantages and
        statistics, the shared-prefix layout of its groups (data.pack), and the old-policy /
        reference log-probs when the recipe needs them."""
        width = max(len(p) + len(c) for p, c in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        for i, (prompt, completion) in enumerate(rows):
            input_ids[i, : len(prompt) + len(completion)] = torch.tensor(prompt + completion)
            labels[i, len(prompt) : len(prompt) + len(completion)] = torch.tensor(completion)
        mb = {
            "input_ids": input_ids,
            "labels": labels,
            **per_row,
            "num_tokens": torch.tensor([len(p) + len(c) for p, c in rows]),
        }
        if self.share_prompts:
            mb.update(group_layout(rows, group_of, self.pad_id))
        if self.cfg.updates_per_batch > 1:
            mb["old_logps"] = self._logps(self.ctx.model, mb)
        if self.cfg.kl_coef > 0:
            mb["ref_logps"] = self._reference_logps(mb)
        return mb

    @torch.no_grad()
    def _logps(self, model, mb: dict[str, torch.Tensor]) -> torch.Tensor:
        device = next(model.parameters()).device
        chunk = self.ctx.recipe.train.logprob_chunk_size
        return rollout_forward(functools.partial(token_logprobs, model, chunk_size=chunk), mb, device).cpu()

    def _reference_logps(self, mb: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.reference is not None:
            return self._logps(self.reference, mb)
        disable = getattr(self.ctx.model, "disable_adapter", None)
        with disable() if disable else nullcontext():
            return self._logps(self.ctx.model, mb)

    def _write_samples(self, batch: int, samples, texts, totals) -> None:
        with (self.ctx.out_dir / "samples.jsonl").open("a") as f:
            shown = list(zip(samples, texts, totals.tolist()))[: 2 * self.cfg.group_size]  # 2 groups
            for sample, text, total in shown:
                row = {
                    "batch": batch,
                    "prompt": sample["prompt"],
                    "reference": sample["reference"],
                    "completion": text,
                    "reward": total,
                }
                f.write(json.dumps(row, default=str) + "\n")


def screen_rewards(totals: torch.Tensor, group_size: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(totals with each nan/inf replaced by the mean of its group's finite rewards, mask of those
    replaced). At the group mean a completion's advantage is 0 under group_std, rloo and none,
    and the others' advantages are as if it were not there (mean unchanged; std over finite values
    up to the extra entries). A warning counts them; a batch with no finite reward is an error:
    a reward function that returns nan would otherwise train on nothing, silently."""
    bad = ~torch.isfinite(totals)
    count = int(bad.sum())
    if not count:
        return totals, bad
    if count == totals.numel():
        raise UserError(
            f"rollout batch {batch}: every reward is nan or inf ({count} of {count}); "
            "check the reward functions (a verifier that fails to parse, a reward model "
            "that overflows)"
        )
    log.warning(
        "rollout batch %d: %d of %d rewards are not finite (nan/inf): those completions get "
        "advantage 0 (stat/nonfinite_reward)",
        batch,
        count,
        totals.numel(),
    )
    groups, bad_groups = totals.view(-1, group_size), bad.view(-1, group_size)
    finite = torch.where(bad_groups, torch.zeros_like(groups), groups)
    kept = (~bad_groups).sum(dim=1, keepdim=True)
    means = finite.sum(dim=1, keepdim=True) / kept.clamp(min=1)
    return torch.where(bad_groups, means.expand_as(groups), groups).reshape(totals.shape), bad


def turn_end_id(tokenizer, eos_ids: list[int]) -> int:
    """The stop token the chat template ends an assistant turn with (Llama-3: <|eot_id|>, not
    the tokenizer's eos <|end_of_text|>). generate_ids drops the stop token it met, so a finished
    completion is scored with this one appended: the policy learns to end turns as SFT taught it."""
    ids, labels = tokenize_conversation(
        tokenizer, [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
    )
    ends = [t for t, label in zip(ids, labels) if label != IGNORE and t in eos_ids]
    if ends:
        return ends[-1]
    if not eos_ids:
        raise UserError("the tokenizer and model define no stop token: completions could never end")
    return eos_ids[0]


def hash_seed(seed: int, batch: int, rank: int) -> int:
    """A sampling seed that is a pure function of (seed, batch, rank)."""
    return random.Random(f"{seed}/grpo/batch/{batch}/rank/{rank}").randrange(2**31)
