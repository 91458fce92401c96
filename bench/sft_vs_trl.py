#!/usr/bin/env python
"""SFT step time, throughput, peak memory and MFU: posttrain's training loop vs TRL's SFTTrainer.

    OMP_NUM_THREADS=1 .venv/bin/python bench/sft_vs_trl.py [--steps 10] [--warmup 2]
        [--vocab 8192,128256] [--frameworks posttrain,trl] [--chunk-size 256] [--json out.json]

Both frameworks train the same tiny Llama (bench/harness.py: hidden 256, 4 layers, 4 heads / 2 KV
heads, untied head, fp32, sdpa; torch.manual_seed(0)) on the same pre-tokenised random sequences
of exactly 256 tokens (loss on every token), batch 8, AdamW lr 1e-4 constant, grad clipping at
1.0, no eval, no checkpoints. Each (framework, vocabulary) pair runs in a fresh child process
(`--one FRAMEWORK:VOCAB`), so the process-wide, monotonic VmHWM measures that run alone.

See bench/README.md for what each number means and how it is measured.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402  (stdlib only at import; torch is imported lazily)
import runners  # noqa: E402
from harness import BATCH  # noqa: E402

SEQ_LEN = 256
LR = 1e-4
FRAMEWORKS = ("posttrain", "trl")


def prepare(framework: str, vocab: int, args, tmp: Path) -> dict:
    model = harness.build_model(vocab)
    counts = harness.param_counts(model)
    tokens = BATCH * SEQ_LEN
    return {
        "model": model,
        "tokenizer": harness.build_tokenizer(vocab),
        "data": harness.random_ids(vocab, ((args.warmup + args.steps) * BATCH, SEQ_LEN)),
        "tokens_per_step": tokens,
        "units_per_step": BATCH,
        **counts,
        "flops_per_step": harness.model_flops(counts["body_params"], counts["head_params"], tokens, tokens, SEQ_LEN),
    }


def run(framework: str, setup: dict, args, out_dir: Path) -> dict:
    return (run_posttrain if framework == "posttrain" else run_trl)(setup, args, out_dir)


def run_posttrain(setup: dict, args, out_dir: Path) -> dict:
    """TrainJob + EpochPlan over Examples + NextTokenObjective + TokenLogprobs (posttrain sft)."""
    import functools

    from accelerate import Accelerator

    from posttrain.data.batching import Example, collate_padded
    from posttrain.data.plans import EpochPlan, Layout
    from posttrain.model.logprobs import TokenLogprobs
    from posttrain.objectives.sft import NextTokenObjective

    recipe = runners.posttrain_recipe(args, out_dir, LR)
    acc = Accelerator(cpu=True)
    units = [Example(input_ids=list(row), labels=list(row)) for row in setup["data"]]  # loss on every token
    tok = setup["tokenizer"]
    collate = functools.partial(collate_padded, pad_id=tok.pad_token_id if tok.pad_token_id is not None else 0)
    plan = EpochPlan(units, collate, Layout(BATCH, 1, 1, 0), recipe.seed, recipe.train.max_steps, recipe.train.epochs)
    policy, objective = TokenLogprobs(setup["model"], args.chunk_size), NextTokenObjective()
    first_loss = runners.posttrain_loss(objective, policy, collate(units[:BATCH]), acc)
    return {**runners.run_posttrain(recipe, acc, policy, tok, plan, objective, args), "first_loss": first_loss}


def run_trl(setup: dict, args, out_dir: Path) -> dict:
    """SFTTrainer on a datasets.Dataset with an input_ids column (already processed for TRL)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    data = setup["data"]
    config = SFTConfig(max_length=SEQ_LEN, packing=False, **runners.trl_config_kwargs(args, out_dir, LR))
    timer = runners.trl_step_timer()
    trainer = SFTTrainer(
        model=setup["model"],
        args=config,
        train_dataset=Dataset.from_dict({"input_ids": data}),
        processing_class=setup["tokenizer"],
        callbacks=[timer],
    )
    first_loss = runners.trl_loss(trainer, check_trl_sees_our_tokens(trainer, data))
    return {**runners.train_trl(trainer, timer, args), "first_loss": first_loss}


def check_trl_sees_our_tokens(trainer, data: list[list[int]]) -> dict:
    """TRL prepares a pre-tokenised dataset (labels column, truncation, filter) and collates it
    itself: make sure no EOS was appended, nothing truncated, masked or padded. Returns the
    collated batch of rows 0-7 (the rows posttrain's first loss is computed on)."""
    ds = trainer.train_dataset
    rows = ds["input_ids"]
    assert sorted(map(tuple, rows)) == sorted(map(tuple, data)), "TRL changed the token sequences"
    assert ds["labels"] == rows, "TRL masked some labels"
    batch = trainer.data_collator([ds[i] for i in range(BATCH)])
    assert tuple(batch["input_ids"].shape) == (BATCH, SEQ_LEN), batch["input_ids"].shape
    assert bool((batch["labels"] == batch["input_ids"]).all()), "collated labels differ from input ids"
    if "attention_mask" in batch:
        assert bool(batch["attention_mask"].all()), "collator padded"
    return batch


def run_one(spec: str, args) -> dict:
    return harness.child(spec, args, prepare, run)


def parent(args) -> int:
    return harness.report(
        args,
        __file__,
        f"SFT step benchmark: batch {BATCH} x {SEQ_LEN} tokens, loss on every token",
        FRAMEWORKS,
        ["s/step", "tokens/s", "peak MiB", "train MiB", "MFU", "first loss"],
        notes=(
            f"s/step: mean over the timed steps (warm-up excluded); tokens/s = {BATCH * SEQ_LEN} tokens per step "
            "/ s/step",
            "peak MiB: the child process's VmHWM right after its last step (total, imports included); train MiB: "
            "that minus its RSS after imports + tokenizer + data + model",
            "first loss: each framework's own loss on rows 0-7 before training (mean NLL per token)",
            "MFU: (6 N T + 12 L H S T) per step / s/step / matmul rate; N = non-embedding params + LM head",
        ),
    )


if __name__ == "__main__":
    sys.exit(harness.main(__doc__, ",".join(FRAMEWORKS), run_one, parent))
