#!/usr/bin/env python
"""Logit distillation step time and peak memory: posttrain distill vs TRL's GKDTrainer.

    OMP_NUM_THREADS=1 .venv/bin/python bench/distill_vs_trl.py [--steps 10] [--warmup 2]
        [--vocab 8192,128256] [--frameworks posttrain,trl] [--chunk-size 256] [--json out.json]

Both train the same student (bench/harness.py's tiny Llama, torch.manual_seed(0)) to match the
same teacher (the same architecture initialised from torch.manual_seed(1)), with forward KL
(GKD's beta 0) at temperature 1 on fixed data (GKD's lmbda 0, no on-policy samples), on the same
pre-tokenised random rows: prompt 128 + response 128 tokens, loss on the 128 response tokens.
Batch 8 rows, AdamW lr 1e-5 constant, betas (0.9, 0.999), gradient clipping at 1.0, no eval, no
checkpoints, no activation checkpointing.

- posttrain: the units of posttrain/stages/distill.py (DistillUnit, DistillPolicy, TeacherOnTheFly,
  DistillObjective) through loop.run: the teacher's decoder once per micro-batch, both heads one
  chunk of `--chunk-size` positions at a time.
- trl: trl.experimental.gkd.GKDTrainer (lmbda=0, seq_kd=False, beta=0) with a collator that hands
  it the same rows: full-vocabulary logits of student and teacher for the whole batch.

Each (framework, vocabulary) pair runs in a fresh child process; the model, tokenizer, memory,
matmul, reporting and command line are bench/harness.py's, the runners bench/runners.py's.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402  (stdlib only at import; torch is imported lazily)
import runners  # noqa: E402
from harness import BATCH  # noqa: E402

PROMPT_LEN = 128
RESPONSE_LEN = 128
SEQ_LEN = PROMPT_LEN + RESPONSE_LEN
DATA_SEED = 1234
LR = 1e-5
FRAMEWORKS = ("posttrain", "trl")


def build_rows(vocab: int, n_rows: int) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) rows: random prompt + response ids, labels on the response only."""
    import torch

    ids = torch.randint(0, vocab, (n_rows, SEQ_LEN), generator=torch.Generator().manual_seed(DATA_SEED)).tolist()
    return [(row, [-100] * PROMPT_LEN + row[PROMPT_LEN:]) for row in ids]


def run_posttrain(student, teacher, tokenizer, rows, args, out_dir: Path) -> dict:
    import functools

    from accelerate import Accelerator

    from posttrain.data.batching import Example
    from posttrain.data.plans import EpochPlan, Layout
    from posttrain.model.distill_head import DistillPolicy, TeacherOnTheFly
    from posttrain.stages.distill import DistillObjective, DistillUnit, _collate

    recipe = runners.posttrain_recipe(args, out_dir, LR, "distill.loss=forward_kl")
    acc = Accelerator(cpu=True)
    units = [DistillUnit(Example(ids, labels), i) for i, (ids, labels) in enumerate(rows)]
    collate = functools.partial(_collate, pad_id=0, cache=None)
    plan = EpochPlan(units, collate, Layout(BATCH, 1, 1, 0), 0, args.warmup + args.steps, 1.0)
    policy = DistillPolicy(student, args.chunk_size)
    objective = DistillObjective(TeacherOnTheFly(teacher.to(acc.device), 1.0), 0.0, 1.0)
    first_loss = runners.posttrain_loss(objective, policy, collate(units[:BATCH]), acc)
    return {**runners.run_posttrain(recipe, acc, policy, tokenizer, plan, objective, args), "first_loss": first_loss}


def run_trl(student, teacher, tokenizer, rows, args, out_dir: Path) -> dict:
    import torch
    from datasets import Dataset
    from trl.experimental.gkd import GKDConfig, GKDTrainer

    def collate(features):
        ids = torch.tensor([f["input_ids"] for f in features])
        return {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "labels": torch.tensor([f["labels"] for f in features]),
        }

    config = GKDConfig(
        max_length=SEQ_LEN,
        lmbda=0.0,
        beta=0.0,
        temperature=1.0,
        seq_kd=False,
        **runners.trl_config_kwargs(args, out_dir, LR),
    )
    dataset = Dataset.from_dict({"input_ids": [r[0] for r in rows], "labels": [r[1] for r in rows]})
    timer = runners.trl_step_timer()
    trainer = GKDTrainer(
        model=student,
        teacher_model=teacher,
        args=config,
        data_collator=collate,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[timer],
    )
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(BATCH)])
    assert batch["input_ids"][0].tolist() == rows[0][0] and int((batch["labels"] != -100).sum()) == BATCH * RESPONSE_LEN
    first_loss = runners.trl_loss(trainer, batch)
    return {**runners.train_trl(trainer, timer, args), "first_loss": first_loss}


def prepare(framework: str, vocab: int, args, tmp: Path) -> dict:
    student = harness.build_model(vocab)
    counts = harness.param_counts(student)
    tokens, scored = BATCH * SEQ_LEN, BATCH * RESPONSE_LEN
    return {
        "student": student,
        "teacher": harness.build_model(vocab, seed=1),
        "tokenizer": harness.build_tokenizer(vocab),
        "rows": build_rows(vocab, (args.warmup + args.steps) * BATCH),
        "tokens_per_step": tokens,
        "units_per_step": BATCH,
        **counts,
        # the student's training FLOPs; the teacher's forward is not counted
        "flops_per_step": harness.model_flops(counts["body_params"], counts["head_params"], tokens, scored, SEQ_LEN),
    }


def run(framework: str, setup: dict, args, out_dir: Path) -> dict:
    runner = run_posttrain if framework == "posttrain" else run_trl
    return runner(setup["student"], setup["teacher"], setup["tokenizer"], setup["rows"], args, out_dir)


def run_one(spec: str, args) -> dict:
    return harness.child(spec, args, prepare, run, trl_modules=("trl.experimental.gkd",))


def parent(args) -> int:
    return harness.report(
        args,
        __file__,
        f"distillation step benchmark: batch {BATCH} rows x {SEQ_LEN} tokens (loss on {RESPONSE_LEN}), "
        "forward KL, teacher on the fly",
        FRAMEWORKS,
        ["s/step", "tokens/s", "peak MiB", "train MiB", "MFU", "first loss"],
        notes=(
            "first loss: each framework's loss on rows 0-7 before training (the mean forward KL per response "
            "token): the two compute the same quantity",
            "peak MiB: the child's VmHWM after its last step; train MiB: that minus its RSS after imports, "
            "tokenizer, data, student and teacher",
            "MFU: the student's training FLOPs, 6 (N_body T + N_head T_scored) + 12 L H S T, per s/step over the "
            "matmul rate; the teacher's forward is not counted",
        ),
    )


if __name__ == "__main__":
    sys.exit(harness.main(__doc__, ",".join(FRAMEWORKS), run_one, parent))
