#!/usr/bin/env python
"""Logit distillation step time and peak memory: posttrain distill vs TRL's GKDTrainer.

    OMP_NUM_THREADS=1 .venv/bin/python bench/distill_vs_trl.py [--steps 10] [--warmup 2]
        [--vocab 8192,128256] [--frameworks posttrain,trl] [--chunk-size 256] [--json out.json]

Both train the same student (bench/sft_vs_trl.py's tiny Llama, torch.manual_seed(0)) to match the
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

Each (framework, vocabulary) pair runs in a fresh child process, as in sft_vs_trl.py, whose
helpers (model, tokenizer, memory, matmul, command line) this script reuses.
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sft_vs_trl import (  # noqa: E402  (stdlib only at import; torch is imported lazily)
    BATCH,
    MODEL_KW,
    _HighWaterAfterLastStep,
    build_model,
    build_tokenizer,
    finish,
    import_framework,
    library_versions,
    main as bench_main,
    measure,
    print_versions,
    proc_status_kib,
    selected,
    trl_step_timer,
)

PROMPT_LEN = 128
RESPONSE_LEN = 128
SEQ_LEN = PROMPT_LEN + RESPONSE_LEN
DATA_SEED = 1234
LR = 1e-5
FRAMEWORKS = ("posttrain", "trl")


def build_teacher(vocab: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1)
    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab, attn_implementation="sdpa", **MODEL_KW)).float()


def build_rows(vocab: int, n_rows: int) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) rows: random prompt + response ids, labels on the response only."""
    import torch

    ids = torch.randint(0, vocab, (n_rows, SEQ_LEN), generator=torch.Generator().manual_seed(DATA_SEED)).tolist()
    return [(row, [-100] * PROMPT_LEN + row[PROMPT_LEN:]) for row in ids]


def run_posttrain(student, teacher, tokenizer, rows, args, out_dir: Path) -> dict:
    import functools

    import torch
    from accelerate import Accelerator

    from posttrain.config import load_recipe
    from posttrain.data.batching import Example
    from posttrain.data.plans import EpochPlan, Layout
    from posttrain.log import read_metrics
    from posttrain.model.distill_head import DistillPolicy, TeacherOnTheFly
    from posttrain.stages.distill import DistillObjective, DistillUnit, _collate
    from posttrain.train import loop

    total = args.warmup + args.steps
    recipe = load_recipe(None, [
        f"train.micro_batch_size={BATCH}", "train.grad_accum_steps=1", f"train.max_steps={total}",
        f"train.lr={LR}", "train.schedule=constant", "train.warmup_steps=0", "train.max_grad_norm=1.0",
        "train.betas=[0.9,0.999]", f"train.logprob_chunk_size={args.chunk_size}", "train.log_every=1",
        "distill.loss=forward_kl", "log.tensorboard=false", "seed=0", f"output_dir={out_dir}"])
    acc = Accelerator(cpu=True)
    units = [DistillUnit(Example(ids, labels), i) for i, (ids, labels) in enumerate(rows)]
    collate = functools.partial(_collate, pad_id=0, cache=None)
    plan = _HighWaterAfterLastStep(EpochPlan(units, collate, Layout(BATCH, 1, 1, 0), 0, total, 1.0))
    policy = DistillPolicy(student, args.chunk_size)
    objective = DistillObjective(TeacherOnTheFly(teacher.to(acc.device), 1.0), 0.0, 1.0)
    first = collate(units[:BATCH])
    with torch.no_grad():
        first_loss = float(objective.loss(policy, first)[0]) / objective.weight(first)
    job = loop.TrainJob(recipe=recipe, out_dir=out_dir, accelerator=acc, policy=policy,
                        tokenizer=tokenizer, plan=plan, objective=objective)
    loop.run(job)
    logged = [r for r in read_metrics(out_dir) if "step_time_s" in r]
    return {"step_times": [r["step_time_s"] for r in logged if r["step"] > args.warmup],
            "hwm_kib": plan.hwm_kib, "first_loss": first_loss}


def run_trl(student, teacher, tokenizer, rows, args, out_dir: Path) -> dict:
    import torch
    from datasets import Dataset
    from trl.experimental.gkd import GKDConfig, GKDTrainer

    def collate(features):
        ids = torch.tensor([f["input_ids"] for f in features])
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
                "labels": torch.tensor([f["labels"] for f in features])}

    total = args.warmup + args.steps
    config = GKDConfig(
        output_dir=str(out_dir), per_device_train_batch_size=BATCH, gradient_accumulation_steps=1,
        max_length=SEQ_LEN, lmbda=0.0, beta=0.0, temperature=1.0, seq_kd=False, learning_rate=LR,
        lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, adam_beta1=0.9, adam_beta2=0.999,
        max_grad_norm=1.0, report_to=[], save_strategy="no", eval_strategy="no", logging_steps=10**6,
        max_steps=total, dataloader_num_workers=0, use_cpu=True, bf16=False, seed=0,
        gradient_checkpointing=False)
    dataset = Dataset.from_dict({"input_ids": [r[0] for r in rows], "labels": [r[1] for r in rows]})
    timer = trl_step_timer()
    trainer = GKDTrainer(model=student, teacher_model=teacher, args=config, data_collator=collate,
                         train_dataset=dataset, processing_class=tokenizer, callbacks=[timer])
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(BATCH)])
    assert batch["input_ids"][0].tolist() == rows[0][0] and int((batch["labels"] != -100).sum()) == BATCH * RESPONSE_LEN
    with torch.no_grad():
        first_loss = float(trainer.compute_loss(trainer.model, batch))
    trainer.train()
    assert len(timer.times) == total, len(timer.times)
    return {"step_times": timer.times[args.warmup:], "hwm_kib": timer.hwm_kib, "first_loss": first_loss}


def run_one(spec: str, args) -> dict:
    framework, vocab = spec.split(":")
    vocab = int(vocab)
    import_framework(framework)
    if framework == "trl":
        import trl.experimental.gkd  # noqa: F401  (its module too, before the baseline)
    tokenizer, rows = build_tokenizer(vocab), build_rows(vocab, (args.warmup + args.steps) * BATCH)
    student, teacher = build_model(vocab), build_teacher(vocab)
    gc.collect()
    baseline = proc_status_kib()
    with tempfile.TemporaryDirectory(prefix=f"bench-distill-{framework}-{vocab}-") as tmp:
        runner = run_posttrain if framework == "posttrain" else run_trl
        result = runner(student, teacher, tokenizer, rows, args, Path(tmp) / "run")
    end = proc_status_kib()
    import torch

    return {"framework": framework, "vocab": vocab, "threads": torch.get_num_threads(),
            "baseline_rss_kib": baseline["VmRSS"], "peak_kib": result.pop("hwm_kib") or end["VmHWM"],
            **result}


def summarise(r: dict, peak_gflops: float) -> dict:
    times = r["step_times"]
    s_per_step = sum(times) / len(times)
    return {"s_per_step": s_per_step, "s_per_step_median": statistics.median(times),
            "steps_per_s": 1 / s_per_step, "peak_mib": r["peak_kib"] / 1024,
            "train_mib": (r["peak_kib"] - r["baseline_rss_kib"]) / 1024}


def parent(args) -> int:
    vocabs, frameworks = selected(args, FRAMEWORKS)
    versions = library_versions()
    print(f"# distillation step benchmark: batch {BATCH} rows x {SEQ_LEN} tokens (loss on {RESPONSE_LEN}), "
          f"forward KL, teacher on the fly, {args.warmup} warm-up + {args.steps} timed steps, "
          f"posttrain logprob_chunk_size={args.chunk_size}")
    print_versions(versions)
    results, before, after = measure(args, vocabs, frameworks, __file__, summarise)
    print()
    print("| framework | vocab | s/step | peak MiB | train MiB | loss at step 1 |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['framework']} | {r['vocab']:,} | {r['s_per_step']:.3f} | {r['peak_mib']:,.0f} | "
              f"{r['train_mib']:,.0f} | {r['first_loss']:.5f} |")
    by = {(r["framework"], r["vocab"]): r for r in results}
    for vocab in vocabs:
        p, t = by.get(("posttrain", vocab)), by.get(("trl", vocab))
        if p and t:
            print(f"posttrain/TRL steps per second at V={vocab:,}: {p['steps_per_s'] / t['steps_per_s']:.2f}")
            print(f"peak memory posttrain/TRL at V={vocab:,}: {p['peak_kib'] / t['peak_kib']:.2f} "
                  f"(train MiB: {p['train_mib'] / t['train_mib']:.2f})")
    print("# loss at step 1: each framework's loss on rows 0-7 before training (the mean forward KL per "
          "response token): the two compute the same quantity")
    print("# peak MiB: the child's VmHWM after its last step; train MiB: that minus its RSS after imports, "
          "tokenizer, data, student and teacher")
    return finish(args, versions, (before, after), results, len(vocabs) * len(frameworks))


def main() -> int:
    return bench_main(__doc__, ",".join(FRAMEWORKS), run_one, parent)


if __name__ == "__main__":
    sys.exit(main())
