"""REFUEL: multi-turn on-policy RL against a simulated user (Gao et al. 2024, "Regressing the
Relative Future: Efficient Policy Optimization for Multi-turn RLHF").

    posttrain refuel recipes/tiny/refuel.yaml

Data: rows {"turns": [user turn 1, user turn 2, ...], "reference": ...}. The simulated user is
scripted: it says the row's next user turn whatever the policy answered (a second model as the
user is not implemented). The reward terms of `grpo.rewards` score the policy's LAST answer of a
dialogue (the only reward, so the return from any turn on is that final reward).

Each batch (grpo.prompts_per_step dialogues): for every dialogue a turn h ~ U{1..H} (seeded by
batch); the current policy answers turns 1..h-1 (roll-in); at turn h it samples TWO responses;
each branch is played to the end (scripted user + policy); then REBEL's regression
(objectives/preference.py `rebel`, eta = preference.rebel_eta) on the pair of turn-h responses:
    ((1/eta)*[(logp(y_h) - logp_old(y_h)) - (logp(y'_h) - logp_old(y'_h))] - (Q - Q'))^2
with only turn-h response tokens in the log-probs (the context is the dialogue up to user turn h)
and old = the weights that sampled the batch, fixed for the grpo.updates_per_batch optimizer steps
taken on it. The authors' code (ZhaolinGao/REFUEL, setting_one/refuel.py) writes the same
regression as (log-ratio difference - eta*(Q - Q'))^2 (eta^2 times this loss, same minimiser) and
fits it over many optimizer steps on dialogues sampled by one policy: with ONE step per batch the
first gradient is -(2/eta)(Q - Q') grad(log-ratio difference), a two-sample policy gradient whose
size Adam normalises away, so eta only acts when several steps fit the regression.
Rollouts use grpo.temperature, top_p, max_new_tokens, generation_batch_size; the stop token
is appended to each response, as GRPO does. Logged: the loss, REBEL's statistics, `success` (the
share of sampled dialogues whose final answer the verifier accepts), `identical_pairs` (pairs whose
two turn-h responses are the same text: zero gradient) and, with data.eval_sources, `eval_success`
(greedy answers to held-out dialogues, every train.eval_every steps).
"""

from __future__ import annotations

import functools
import json
import math
import random

import torch

from posttrain.config.recipe import Recipe
from posttrain.data.chat import ensure_chat_template, tokenize_prompt
from posttrain.data.preference import PairExample, collate_pairs, tokenize_completion
from posttrain.data.sources import read_rows
from posttrain.errors import UserError, row_error
from posttrain.generation.backend import GenerationRequest, HFBackend
from posttrain.model.logprobs import TokenLogprobs, token_logprobs
from posttrain.objectives.pairwise import (
    PairwiseObjective,
    preference_config,
    sequence_logps,
)
from posttrain.objectives.registry import get_preference_loss
from posttrain.rewards import build_reward_set
from posttrain.train import loop
from posttrain.train.setup import RunContext, start_run


def run(recipe: Recipe, output_dir: str | None = None, resume: bool = False) -> dict[str, float]:
    if recipe.train.grad_accum_steps != 1:
        raise UserError("refuel: leave train.grad_accum_steps at 1; a step is grpo.prompts_per_step dialogues")
    rewards = build_reward_set(recipe.grpo.rewards)
    dialogues = load_dialogues(recipe.data.sources)
    held_out = load_dialogues(recipe.data.eval_sources) if recipe.data.eval_sources else None
    ctx = start_run(recipe, "refuel", output_dir, resume)
    ensure_chat_template(ctx.tokenizer)
    plan = RefuelPlan(ctx, dialogues, rewards)
    job = loop.TrainJob(
        recipe=ctx.recipe,
        out_dir=ctx.out_dir,
        accelerator=ctx.accelerator,
        policy=TokenLogprobs(ctx.model, ctx.recipe.train.logprob_chunk_size),
        tokenizer=ctx.tokenizer,
        plan=plan,
        objective=RolloutStats(get_preference_loss("rebel"), preference_config(recipe.preference)),
        resume_from=ctx.resume_from,
        extra_eval=held_out and functools.partial(_eval_success, ctx, held_out, rewards),
    )
    return loop.run(job)


def _eval_success(ctx: RunContext, dialogues: list[dict], rewards, model) -> dict[str, float]:
    return {
        "eval_success": dialogue_success(
            model,
            ctx.tokenizer,
            dialogues,
            rewards,
            ctx.recipe.grpo.max_new_tokens,
            ctx.recipe.grpo.generation_batch_size,
        )
    }


def dialogue_success(
    model, tokenizer, dialogues: list[dict], rewards, max_new_tokens: int, batch_size: int = 64
) -> float:
    """The share of dialogues whose final answer the verifier accepts when the model answers every
    user turn greedily (the scripted user says each row's turns): REFUEL's held-out success."""
    backend = HFBackend(model, tokenizer, batch_size=batch_size, show_progress=False)

    def greedy(prompts: list[list[dict]], turn: int) -> list[str]:
        requests = [GenerationRequest(tokenize_prompt(tokenizer, p), max_new_tokens) for p in prompts]
        return [t.strip() for t in tokenizer.batch_decode(backend.generate_tokens(requests), skip_special_tokens=True)]

    histories: list[list[dict]] = [[] for _ in dialogues]
    play(greedy, histories, [d["turns"] for d in dialogues], [0] * len(dialogues))
    scores = rewards.score_all(dialogues, [h[-1]["content"] for h in histories])
    return sum(rewards.correct(s) for s in scores) / len(dialogues)


def load_dialogues(sources) -> list[dict]:
    """Each row's user turns (a non-empty list of non-empty strings) and the rest of the row."""
    dialogues = []
    for source in sources:
        for number, row in read_rows(source.path, source.split):
            turns = row.get("turns")
            if not isinstance(turns, list) or not turns:
                raise row_error(source.path, number, "turns", "no user turns (a non-empty list of user messages)")
            for index, turn in enumerate(turns):
                if not isinstance(turn, str) or not turn.strip():
                    raise row_error(source.path, number, f"turns[{index}]", "a user turn must be a non-empty string")
            reference = next((row[k] for k in ("reference", "answer") if row.get(k) is not None), None)
            dialogues.append({**row, "prompt": turns[-1], "reference": reference})
    if not dialogues:
        raise UserError("refuel: the data holds no dialogues")
    return dialogues


def play(generate, histories: list[list[dict]], turns: list[list[str]], first: list[int]) -> None:
    """Continue each dialogue i from user turn first[i] to its last: the scripted user says
    turns[i][k], the policy answers (generate(list of message lists, k) -> texts), in place."""
    for k in range(max(len(t) for t in turns)):
        active = [i for i in range(len(turns)) if first[i] <= k < len(turns[i])]
        if not active:
            continue
        prompts = [histories[i] + [{"role": "user", "content": turns[i][k]}] for i in active]
        for i, prompt, answer in zip(active, prompts, generate(prompts, k)):
            histories[i] = prompt + [{"role": "assistant", "content": answer}]


class RolloutStats(PairwiseObjective):
    """REBEL on the turn-h pairs, plus the rollouts' per-pair `stat/` values in the logs."""

    def loss(self, policy, mb):
        loss, stats = super().loss(policy, mb)
        stats.update({k[5:]: v.sum() for k, v in mb.items() if k.startswith("stat/")})
        return loss, stats


class RefuelPlan:
    """Per optimizer step, the micro-batches of (y_h, y'_h) pairs of one batch of dialogues."""

    def __init__(self, ctx: RunContext, dialogues: list[dict], rewards):
        self.ctx, self.cfg, self.dialogues, self.rewards = ctx, ctx.recipe.grpo, dialogues, rewards
        train = ctx.recipe.train
        batches = math.ceil(train.epochs * len(dialogues) / self.cfg.prompts_per_step)
        self.total_steps = train.max_steps or max(1, batches) * self.cfg.updates_per_batch
        self.backend = HFBackend(
            ctx.model,
            ctx.tokenizer,
            batch_size=self.cfg.generation_batch_size,
            seed=ctx.recipe.seed,
            show_progress=False,
        )
        if ctx.accelerator.num_processes > 1:
            raise UserError("refuel runs in one process")

    def steps(self, start: int = 0):
        """grpo.updates_per_batch optimizer steps on each batch, its old log-probs fixed (the
        regression onto eta x the return difference is fitted over several steps, as the paper's
        code fits it over a whole batch of dialogues sampled by one policy)."""
        mu, cached = self.cfg.updates_per_batch, (None, None)
        for step in range(start, self.total_steps):
            if cached[0] != step // mu:
                cached = (step // mu, self._batch(step // mu))
            yield cached[1]

    @functools.lru_cache(maxsize=2)  # noqa: B019  (one stage object per run: the cache lives as long anyway)
    def _epoch_order(self, epoch: int) -> list[int]:
        order = list(range(len(self.dialogues)))
        random.Random(f"{self.ctx.recipe.seed}/refuel/epoch/{epoch}").shuffle(order)
        return order

    def generator(self, batch: int, phase: str, temperature: float):
        def generate(prompts: list[list[dict]], turn: int) -> list[str]:
            requests = [
                GenerationRequest(
                    tokenize_prompt(self.ctx.tokenizer, p),
                    self.cfg.max_new_tokens,
                    temperature=temperature,
                    top_p=self.cfg.top_p,
                )
                for p in prompts
            ]
            seed = random.Random(f"{self.ctx.recipe.seed}/refuel/{batch}/{phase}/{turn}").randrange(2**31)
            ids = self.backend.generate_tokens(requests, seed=seed)
            return [t.strip() for t in self.ctx.tokenizer.batch_decode(ids, skip_special_tokens=True)]

        return generate

    def _batch(self, batch: int) -> list[dict[str, torch.Tensor]]:
        n, per_step = len(self.dialogues), self.cfg.prompts_per_step
        chosen = [
            self.dialogues[self._epoch_order(k // n)[k % n]] for k in range(batch * per_step, (batch + 1) * per_step)
        ]
        rng = random.Random(f"{self.ctx.recipe.seed}/refuel/turn/{batch}")
        turns = [d["turns"] for d in chosen]
        h = [rng.randrange(len(t)) for t in turns]  # 0-based turn index
        histories: list[list[dict]] = [[] for _ in chosen]
        play(
            self.generator(batch, "roll-in", self.cfg.temperature),
            histories,
            [t[:k] for t, k in zip(turns, h)],
            [0] * len(chosen),
        )
        twice = [i for i in range(len(chosen)) for _ in range(2)]  # two branches per dialogue
        branches = [list(histories[i]) for i in twice]
        play(
            self.generator(batch, "branches", self.cfg.temperature),
            branches,
            [turns[i] for i in twice],
            [h[i] for i in twice],
        )
        samples = [chosen[i] for i in twice]
        scores = self.rewards.score_all(samples, [b[-1]["content"] for b in branches])
        totals = [self.rewards.total(s) for s in scores]
        success = [float(self.rewards.correct(s)) for s in scores]
        pairs = []
        for i in range(len(chosen)):
            context = histories[i] + [{"role": "user", "content": turns[i][h[i]]}]
            responses = [branches[2 * i + j][len(context)] for j in range(2)]
            pair = PairExample(
                context,
                tokenize_completion(self.ctx.tokenizer, context, [responses[0]]),
                tokenize_completion(self.ctx.tokenizer, context, [responses[1]]),
                scores=(totals[2 * i], totals[2 * i + 1]),
            )
            pairs.append((pair, (success[2 * i] + success[2 * i + 1]) / 2, float(responses[0] == responses[1])))
        if self.cfg.samples_every and batch % self.cfg.samples_every == 0:
            self._write_samples(batch, branches[:4], totals[:4])
        size = self.ctx.recipe.train.micro_batch_size
        return [self._micro_batch(pairs[s : s + size]) for s in range(0, len(pairs), size)]

    @torch.no_grad()
    def _micro_batch(self, pairs) -> dict[str, torch.Tensor]:
        mb = collate_pairs([p for p, _, _ in pairs], self.ctx.tokenizer.pad_token_id)
        model, n = self.ctx.model, len(pairs)
        device = next(model.parameters()).device
        logps, _ = sequence_logps(
            token_logprobs(
                model,
                mb["input_ids"].to(device),
                mb["labels"].to(device),
                chunk_size=self.ctx.recipe.train.logprob_chunk_size,
            ),
            mb["labels"].to(device),
        )
        mb["ref_chosen"], mb["ref_rejected"] = logps[:n].cpu(), logps[n:].cpu()  # the sampling policy's
        mb["stat/success"] = torch.tensor([s for _, s, _ in pairs])
        # identical turn-h responses: no gradient whatever their returns (the paper's code drops them)
        mb["stat/identical_pairs"] = torch.tensor([same for _, _, same in pairs])
        return mb

    def _write_samples(self, step: int, branches, totals) -> None:
        if not self.ctx.accelerator.is_main_process:
            return
        with (self.ctx.out_dir / "samples.jsonl").open("a") as f:
            for dialogue, total in zip(branches, totals):
                f.write(json.dumps({"batch": step, "dialogue": dialogue, "reward": total}) + "\n")
