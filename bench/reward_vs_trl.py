#!/usr/bin/env python
"""Reward-model step time, throughput, peak memory and MFU: posttrain reward vs TRL's RewardTrainer.

    OMP_NUM_THREADS=1 .venv/bin/python bench/reward_vs_trl.py [--steps 10] [--warmup 2]
        [--vocab 8192,128256] [--frameworks posttrain,posttrain-separate,trl] [--json out.json]

All frameworks train the same reward model: bench/harness.py's tiny Llama body with a one-output
score head (LlamaForSequenceClassification, torch.manual_seed(0), pad_token_id the tokenizer's),
with the pairwise Bradley-Terry loss -log sigma(r_chosen - r_rejected), mean over pairs, on the
same pre-tokenised random pairs: prompt 128 + chosen 128 and prompt 128 + rejected 128 ids, each
response scored at its last token. Batch 8 pairs, AdamW lr 1e-5 constant, clipping 1.0.

- posttrain: the units of posttrain/stages/reward.py (RewardPair, collate_reward_pairs,
  RewardScores, PairwiseRewardObjective with reward.loss bradley_terry), with the default
  shared prefix (one row per pair: the prompt once, the two responses as masked segments,
  the head only at the two scored positions).
- posttrain-separate: the same with preference.shared_prefix=false (a chosen and a rejected row).
- trl: RewardTrainer on a dataset with chosen_ids / rejected_ids columns, which TRL 1.16 takes as
  already tokenised (no EOS appended); its collator stacks the 8 chosen then the 8 rejected rows.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402  (stdlib only at import; torch is imported lazily)
import runners  # noqa: E402
from harness import BATCH  # noqa: E402

PROMPT_LEN = RESPONSE_LEN = 128
SEQ_LEN = PROMPT_LEN + RESPONSE_LEN
ROWS = 2 * BATCH
LR = 1e-5
FRAMEWORKS = ("posttrain", "posttrain-separate", "trl")


def pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def prepare(framework: str, vocab: int, args, tmp: Path) -> dict:
    tokenizer = harness.build_tokenizer(vocab)
    model = harness.build_model(vocab, classifier=True, pad_id=pad_id(tokenizer))
    counts = harness.param_counts(model)
    n = (args.warmup + args.steps) * BATCH
    pairs = [(p + c, p + r) for p, c, r in harness.random_ids(vocab, (n, 3, PROMPT_LEN))]
    return {
        "model": model,
        "tokenizer": tokenizer,
        "pairs": pairs,
        "units_per_step": BATCH,
        "tokens_per_step": ROWS * SEQ_LEN,
        **counts,
        # no LM head: the body over both rows (the separate layout's work) and a 1-output head
        "flops_per_step": harness.model_flops(counts["body_params"], 0, ROWS * SEQ_LEN, 0, SEQ_LEN),
    }


def run(framework: str, setup: dict, args, out_dir: Path) -> dict:
    if framework == "trl":
        return run_trl(setup, args, out_dir)
    return run_posttrain(setup, args, out_dir, shared=framework == "posttrain")


def run_posttrain(setup: dict, args, out_dir: Path, shared: bool) -> dict:
    import functools

    from accelerate import Accelerator

    from posttrain.data.plans import EpochPlan, Layout
    from posttrain.data.reward import RewardPair, collate_reward_pairs
    from posttrain.model.reward_model import RewardScores
    from posttrain.model.segment_mask import use_shared_prefix
    from posttrain.objectives.registry import get_reward_loss
    from posttrain.objectives.reward_step import PairwiseRewardObjective

    recipe = runners.posttrain_recipe(
        args, out_dir, LR, "reward.loss=bradley_terry", f"preference.shared_prefix={str(shared).lower()}"
    )
    acc = Accelerator(cpu=True)
    model = setup["model"]
    units = [RewardPair(chosen, rejected) for chosen, rejected in setup["pairs"]]
    layout_shared = use_shared_prefix(model, recipe.preference.shared_prefix)
    assert layout_shared == shared, "the backend cannot take the shared-prefix mask"
    collate = functools.partial(collate_reward_pairs, pad_id=pad_id(setup["tokenizer"]), shared=layout_shared)
    first = collate(units[:BATCH])
    assert first["input_ids"].shape[0] == (BATCH if shared else ROWS), first["input_ids"].shape
    policy = RewardScores(model)
    objective = PairwiseRewardObjective(get_reward_loss(recipe.reward.loss), 0)
    first_loss = runners.posttrain_loss(objective, policy, first, acc)
    plan = EpochPlan(units, collate, Layout(BATCH, 1, 1, 0), recipe.seed, recipe.train.max_steps, recipe.train.epochs)
    return {
        **runners.run_posttrain(recipe, acc, policy, setup["tokenizer"], plan, objective, args),
        "first_loss": first_loss,
    }


def run_trl(setup: dict, args, out_dir: Path) -> dict:
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    pairs = setup["pairs"]
    config = RewardConfig(
        max_length=SEQ_LEN, center_rewards_coefficient=None, **runners.trl_config_kwargs(args, out_dir, LR)
    )
    dataset = Dataset.from_dict({"chosen_ids": [c for c, _ in pairs], "rejected_ids": [r for _, r in pairs]})
    timer = runners.trl_step_timer()
    trainer = RewardTrainer(
        model=setup["model"], args=config, train_dataset=dataset, processing_class=setup["tokenizer"], callbacks=[timer]
    )
    ds = trainer.train_dataset
    assert list(zip(ds["chosen_ids"], ds["rejected_ids"])) == [tuple(p) for p in pairs], "TRL changed the pairs"
    batch = trainer.data_collator([ds[i] for i in range(BATCH)])
    assert tuple(batch["input_ids"].shape) == (ROWS, SEQ_LEN) and bool(batch["attention_mask"].all())
    assert batch["input_ids"][0].tolist() == pairs[0][0] and batch["input_ids"][BATCH].tolist() == pairs[0][1]
    first_loss = runners.trl_loss(trainer, batch)
    return {**runners.train_trl(trainer, timer, args), "first_loss": first_loss}


def run_one(spec: str, args) -> dict:
    return harness.child(spec, args, prepare, run, trl_modules=("trl.trainer.reward_trainer",))


def parent(args) -> int:
    def separate_vs_trl(results, vocabs):
        harness.print_ratios(results, vocabs, "posttrain-separate", {"trl": "TRL (posttrain separate rows)"})

    return harness.report(
        args,
        __file__,
        f"reward-model step benchmark: batch {BATCH} pairs = {ROWS} rows x {SEQ_LEN} tokens (prompt "
        f"{PROMPT_LEN} + response {RESPONSE_LEN}), Bradley-Terry",
        FRAMEWORKS,
        ["s/step", "pairs/s", "tokens/s", "peak MiB", "train MiB", "MFU", "first loss"],
        extra={"pairs/s": lambda r: f"{r['units_per_s']:.2f}"},
        loss_peers=("trl", "posttrain-separate"),
        more=separate_vs_trl,
        notes=(
            f"tokens/s = {ROWS} x {SEQ_LEN} input tokens per step / s/step (the separate layout's count for every "
            "framework; the shared layout computes each prompt once); first loss: each framework's loss on pairs "
            "0-7 before training",
            f"MFU: (6 N_body T + 12 L H S T) per step, T = {ROWS} x {SEQ_LEN}, no LM head / s/step / matmul rate",
        ),
    )


if __name__ == "__main__":
    sys.exit(harness.main(__doc__, ",".join(FRAMEWORKS), run_one, parent))
