#!/usr/bin/env python
"""GRPO step time (generation included), throughput, peak memory and MFU: posttrain grpo vs TRL's
GRPOTrainer.

    OMP_NUM_THREADS=1 .venv/bin/python bench/grpo_vs_trl.py [--steps 10] [--warmup 2]
        [--vocab 8192,128256] [--frameworks posttrain,trl] [--json out.json]

Both frameworks train the same tiny Llama (bench/harness.py) with GRPO on the same prompts:
2 prompts a step, 4 completions each (batch 8 completions), at most 64 new tokens sampled at
temperature 1 (top-p 1, no top-k), the same reward function (the share of the characters 0-4 in
the decoded completion), group-normalised advantages (mean and std of the group), one update per
batch (ratio 1: no old-policy forward), no KL term (no reference model), token-level loss
aggregation (TRL's default loss_type "dapo", posttrain's grpo.aggregation: token), clipping
epsilon 0.2, AdamW lr 1e-6 constant, gradient clipping 1.0.

Prompts are text, tokenised by each framework with the same tokenizer call (TRL:
processing_class(text=prompts); posttrain here: the same call, handed to the rollout plan as
ids): at 8K, 64 words "tN" that the word-level tokenizer maps to 64 ids; at 128K, the Llama-3
decoding of 64 random ids (re-encoded: about 64 tokens, plus BOS).

- posttrain: posttrain/stages/grpo.py's RolloutPlan (rollouts inside the plan, from the weights
  the loop has just updated) with its HFBackend (transformers generate on the training model,
  batch 8) and PolicyGradientObjective, through loop.run.
- trl: GRPOTrainer with use_vllm=False: transformers generate on the training model
  (generation_batch_size 8), in _prepare_inputs at every step.

s/step is the wall time of a whole step, sampling included, for both: posttrain's from the moment
the loop asks the plan for a step to the moment it asks for the next (its metrics' step_time_s
covers only the update); TRL's from on_step_begin to on_step_end. "gen s/step" is the sampling
part (posttrain: the rest of the step after step_time_s, i.e. sampling, decoding and rewards;
TRL: the time in its _generate, i.e. tokenising the prompts, sampling and decoding). Completions are random samples on both sides: the losses cannot agree, and none
is compared; the mean completion length is printed.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402  (stdlib only at import; torch is imported lazily)
import runners  # noqa: E402
from harness import BATCH  # noqa: E402

GROUP = 4
PROMPTS_PER_STEP = BATCH // GROUP
PROMPT_WORDS = 64
NEW_TOKENS = 64
LR = 1e-6
FRAMEWORKS = ("posttrain", "trl")


def low_digit_share(text: str) -> float:
    """The reward: the share of the characters 0-4 in a completion's text (cheap, varies)."""
    return sum(ch in "01234" for ch in text) / max(1, len(text))


def build_prompts(tokenizer, vocab: int, n: int) -> list[str]:
    ids = harness.random_ids(vocab, (n, PROMPT_WORDS), low=3)
    if vocab != harness.LLAMA3_VOCAB:
        return [" ".join(f"t{i}" for i in row) for row in ids]
    return [tokenizer.decode(row, skip_special_tokens=True) for row in ids]


# For the 8K word-level tokenizer, which has no BOS for the Llama-3 template: a user turn is its
# text, an assistant turn its text and <eos>. posttrain's RolloutPlan reads the assistant turn's
# stop token from the template (turn_end_id); TRL's plain-text prompts never use it.
WORD_LEVEL_TEMPLATE = (
    "{% for m in messages %}{{ m['content'] }} {% if m['role'] == 'assistant' %}<eos> {% endif %}{% endfor %}"
)


def prepare(framework: str, vocab: int, args, tmp: Path) -> dict:
    model = harness.build_model(vocab)
    counts = harness.param_counts(model)
    tokenizer = harness.build_tokenizer(vocab)
    if vocab != harness.LLAMA3_VOCAB:
        tokenizer.chat_template = WORD_LEVEL_TEMPLATE
    prompts = build_prompts(tokenizer, vocab, (args.warmup + args.steps) * PROMPTS_PER_STEP)
    prompt_ids = tokenizer(text=prompts)["input_ids"]  # TRL's own call (_tokenize_prompts)
    mean_prompt = sum(map(len, prompt_ids)) / len(prompt_ids)
    tokens, scored = BATCH * (mean_prompt + NEW_TOKENS), BATCH * NEW_TOKENS
    train = harness.model_flops(
        counts["body_params"], counts["head_params"], tokens, scored, int(mean_prompt) + NEW_TOKENS
    )
    sampling = 2 * (counts["body_params"] * tokens + counts["head_params"] * (scored + BATCH))
    return {
        "model": model,
        "tokenizer": tokenizer,
        "prompts": prompts,
        "prompt_ids": prompt_ids,
        "units_per_step": BATCH,
        "tokens_per_step": tokens,
        "flops_per_step": train + sampling,
        **counts,
    }


def run(framework: str, setup: dict, args, out_dir: Path) -> dict:
    return (run_posttrain if framework == "posttrain" else run_trl)(setup, args, out_dir)


class TimedPlan:
    """Passes a plan through and marks the time at which the loop asks for each step, so that a
    step's wall time (the rollout made lazily inside the plan included) is the gap between marks;
    keeps each step's completion lengths (the scored tokens of each row)."""

    def __init__(self, plan):
        self.plan, self.total_steps, self.marks, self.lengths = plan, plan.total_steps, [], []

    def steps(self, start: int = 0):
        inner = self.plan.steps(start)
        while True:
            self.marks.append(time.perf_counter())
            try:
                micro_batches = next(inner)
            except StopIteration:
                return
            self.lengths.append([n for mb in micro_batches for n in (mb["labels"] != -100).sum(1).tolist()])
            yield micro_batches


def run_posttrain(setup: dict, args, out_dir: Path) -> dict:
    from accelerate import Accelerator

    from posttrain.data.chat import ensure_chat_template
    from posttrain.data.plans import Layout
    from posttrain.generation.backend import HFBackend
    from posttrain.model.logprobs import TokenLogprobs
    from posttrain.objectives.policy_gradient import PolicyGradientObjective
    from posttrain.rewards import RewardSet, RewardTerm
    from posttrain.stages.grpo import RolloutPlan
    from posttrain.train.setup import RunContext

    recipe = runners.posttrain_recipe(
        args,
        out_dir,
        LR,
        f"grpo.group_size={GROUP}",
        f"grpo.prompts_per_step={PROMPTS_PER_STEP}",
        f"grpo.max_new_tokens={NEW_TOKENS}",
        "grpo.temperature=1.0",
        "grpo.top_p=1.0",
        "grpo.kl_coef=0",
        "grpo.updates_per_batch=1",
        "grpo.aggregation=token",
        "grpo.advantage=group_std",
        f"grpo.generation_batch_size={BATCH}",
        "grpo.samples_every=0",
    )
    acc, model, tok = Accelerator(cpu=True), setup["model"], setup["tokenizer"]
    ensure_chat_template(tok)  # turn_end_id reads the assistant turn's stop token from the template
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = RunContext(recipe, out_dir, acc, model, tok, Layout(BATCH, 1, 1, 0), None)
    rewards = RewardSet([RewardTerm("low_digit_share", 1.0, lambda _sample, text: low_digit_share(text), True)])
    samples = [{"prompt": p, "reference": None} for p in setup["prompts"]]
    backend = HFBackend(model, tok, batch_size=BATCH, seed=recipe.seed, show_progress=False)
    plan = TimedPlan(RolloutPlan(ctx, setup["prompt_ids"], samples, rewards, None, backend))
    cfg = recipe.grpo
    objective = PolicyGradientObjective(
        eps_low=cfg.clip_eps,
        eps_high=cfg.clip_eps,
        aggregation=cfg.aggregation,
        kl_coef=0.0,
        kl_kind=cfg.kl_estimator,
        ignore_index=-100,
        max_length=NEW_TOKENS,
    )
    result = runners.run_posttrain(recipe, acc, TokenLogprobs(model, args.chunk_size), tok, plan, objective, args)
    walls = [b - a for a, b in zip(plan.marks, plan.marks[1:])][args.warmup :]
    updates = result["step_times"]
    return {
        **result,
        "step_times": walls,
        "update_times": updates,
        "gen_times": [w - u for w, u in zip(walls, updates)],
        "completion_length": mean([n for step in plan.lengths[args.warmup :] for n in step]),
        "sampler": "posttrain HFBackend.generate_tokens (transformers generate on the training model, batch 8)",
    }


def mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def run_trl(setup: dict, args, out_dir: Path) -> dict:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    def reward(prompts, completions, **kwargs):
        return [low_digit_share(c) for c in completions]

    config = GRPOConfig(
        num_generations=GROUP,
        max_completion_length=NEW_TOKENS,
        temperature=1.0,
        top_p=1.0,
        beta=0.0,
        num_iterations=1,
        loss_type="dapo",
        scale_rewards="group",
        epsilon=0.2,
        generation_batch_size=BATCH,
        use_vllm=False,
        **runners.trl_config_kwargs(args, out_dir, LR),
    )
    timer = runners.trl_step_timer()
    trainer = GRPOTrainer(
        model=setup["model"],
        reward_funcs=reward,
        args=config,
        train_dataset=Dataset.from_dict({"prompt": setup["prompts"]}),
        processing_class=setup["tokenizer"],
        callbacks=[timer],
    )
    assert trainer.ref_model is None and trainer.num_generations == GROUP
    gen_times, lengths = [], []
    generate = trainer._generate

    def timed_generate(prompts):
        started = time.perf_counter()
        out = generate(prompts)
        gen_times.append(time.perf_counter() - started)
        lengths.append([len(c) for c in out[1]])  # (prompt_ids, completion_ids, ...)
        return out

    trainer._generate = timed_generate
    result = runners.train_trl(trainer, timer, args)
    return {
        **result,
        "gen_times": gen_times[args.warmup :],
        "completion_length": mean([n for step in lengths[args.warmup :] for n in step]),
        "sampler": "TRL GRPOTrainer._generate_single_turn (transformers generate on the training model, "
        f"generation_batch_size {config.generation_batch_size})",
    }


def run_one(spec: str, args) -> dict:
    return harness.child(spec, args, prepare, run, trl_modules=("trl.trainer.grpo_trainer",))


def parent(args) -> int:
    def samplers(results, vocabs):
        for r in results:
            print(f"# {r['framework']}:{r['vocab']}: sampler {r['sampler']}")

    extra = {
        "gen s/step": lambda r: f"{mean(r['gen_times']):.3f}" if r.get("gen_times") else "—",
        "completion tokens": lambda r: "—" if r.get("completion_length") is None else f"{r['completion_length']:.1f}",
    }
    return harness.report(
        args,
        __file__,
        f"GRPO step benchmark: {PROMPTS_PER_STEP} prompts x {GROUP} completions of <= {NEW_TOKENS} "
        "sampled tokens per step, generation included",
        FRAMEWORKS,
        ["s/step", "gen s/step", "tokens/s", "peak MiB", "train MiB", "MFU", "completion tokens"],
        extra=extra,
        loss_peers=(),
        more=samplers,
        notes=(
            f"s/step: the whole step, sampling {BATCH} completions included; tokens/s = {BATCH} x (prompt + "
            f"{NEW_TOKENS}) / s/step; completion tokens: mean sampled length (max {NEW_TOKENS})",
            "MFU: training 6 (N_body T + N_head T_completion) + 12 L H S T plus sampling 2 (N_body T + N_head "
            "(T_completion + 8)) per step / s/step / matmul rate (attention in sampling not counted)",
            "losses not compared: the completions are random samples in each framework",
        ),
    )


if __name__ == "__main__":
    sys.exit(harness.main(__doc__, ",".join(FRAMEWORKS), run_one, parent))
