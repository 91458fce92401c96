#!/usr/bin/env python
"""DPO step time, throughput, peak memory and MFU: posttrain's DPO path vs TRL's DPOTrainer.

    OMP_NUM_THREADS=1 .venv/bin/python bench/dpo_vs_trl.py [--steps 10] [--warmup 2]
        [--vocab 8192,128256] [--frameworks posttrain,posttrain-separate,trl,trl-precompute]
        [--chunk-size 256]
        [--json out.json]

All frameworks train the same tiny Llama as bench/sft_vs_trl.py (hidden 256, 4 layers, 4 heads /
2 KV heads, untied head, fp32, sdpa; torch.manual_seed(0)) with sigmoid DPO (beta 0.1) on the same
pre-tokenised random pairs: prompt 128 + chosen 128 and prompt 128 + rejected 128 tokens, loss on
the 128 response tokens of each row. Batch 8 pairs (16 rows of 256 tokens), AdamW lr 1e-6
constant, betas (0.9, 0.999), grad clipping at 1.0, no eval, no checkpoints, no activation
checkpointing; the reference is the initial policy.

- posttrain: the units of posttrain/stages/dpo.py (PairExample, collate_pairs), reference
  log-probs precomputed once with model/reference.py (timed on its own), then loop.run; with the
  default shared prefix (one row per pair: prompt once, then chosen and rejected as masked
  segments). posttrain-separate: the same with preference.shared_prefix=false (two rows per pair).
  Their runner is in dpo_posttrain.py.
- trl: DPOTrainer with its default precompute_ref_log_probs=False: it loads a second copy of the
  model as the reference and runs it at every step.
- trl-precompute: DPOTrainer with precompute_ref_log_probs=True: reference log-probs computed once
  in the trainer's constructor (timed on its own), no reference copy kept.

Each (framework, vocabulary) pair runs in a fresh child process of this script
(`--one FRAMEWORK:VOCAB`), so the process-wide, monotonic VmHWM measures that run alone. The parent
measures a fp32 matmul rate for MFU, runs the children one after another and prints the table.
The model, tokenizer, memory and matmul helpers are sft_vs_trl.py's. See bench/README.md.
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sft_vs_trl import (  # noqa: E402  (stdlib only at import; torch is imported lazily)
    BATCH,
    MODEL_KW,
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
from dpo_posttrain import (  # noqa: E402
    BETA,
    LR,
    PROMPT_LEN,
    RESPONSE_LEN,
    ROWS,
    SEQ_LEN,
    build_pairs,
    model_flops_per_step,
    run_posttrain,
)

FRAMEWORKS = ("posttrain", "posttrain-separate", "trl", "trl-precompute")


# ---------------------------------------------------------------------------------------------
# TRL: DPOTrainer on a pre-tokenised datasets.Dataset.
# ---------------------------------------------------------------------------------------------

def _trl_trainer_class():
    """DPOTrainer, told that the dataset is already tokenised and timing its reference precompute.

    TRL 1.16's DPOTrainer._prepare_dataset has no path for pre-tokenised pairs: it always runs
    extract_prompt, appends EOS to text and tokenises `prompt`/`chosen`/`rejected`. Its output
    columns, `prompt_ids`/`chosen_ids`/`rejected_ids`, are what DataCollatorForPreference reads.
    The dataset here already has exactly those columns, so preparation is skipped (the only
    other thing it does, dropping rows whose prompt alone fills max_length, drops nothing here)."""
    from trl import DPOTrainer

    class PretokenisedDPOTrainer(DPOTrainer):
        precompute_s = None

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            return dataset

        def _precompute_ref_logps(self, dataset, name, batch_size):
            started = time.perf_counter()
            out = super()._precompute_ref_logps(dataset, name, batch_size)
            self.precompute_s = (self.precompute_s or 0.0) + time.perf_counter() - started
            return out

    return PretokenisedDPOTrainer


def run_trl(model, tokenizer, pairs, args, out_dir: Path, precompute: bool, model_dir: Path) -> dict:
    from datasets import Dataset
    from trl import DPOConfig

    total = args.warmup + args.steps

    config = DPOConfig(
        output_dir=str(out_dir), per_device_train_batch_size=BATCH, gradient_accumulation_steps=1,
        max_length=SEQ_LEN, beta=BETA, loss_type=["sigmoid"], learning_rate=LR,
        lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, adam_beta1=0.9,
        adam_beta2=0.999, max_grad_norm=1.0, report_to=[], save_strategy="no", eval_strategy="no",
        logging_steps=10**6, max_steps=total, dataloader_num_workers=0, use_cpu=True, bf16=False,
        seed=0, precompute_ref_log_probs=precompute,
        # DPOConfig turns activation checkpointing (and bf16) on by default; posttrain's recipe
        # default is off, and the comparison is of the same computation.
        gradient_checkpointing=False,
    )
    dataset = Dataset.from_dict({"prompt_ids": [p for p, _, _ in pairs],
                                 "chosen_ids": [c for _, c, _ in pairs],
                                 "rejected_ids": [r for _, _, r in pairs]})
    # ref_model=None: without precompute, TRL builds the reference itself by loading the policy's
    # `config._name_or_path` again (a second full copy of the weights); that is the initial policy
    # saved by run_one before training, as if the user had loaded the policy from that directory.
    assert model.config._name_or_path == str(model_dir)
    timer = trl_step_timer()
    started = time.perf_counter()
    trainer = _trl_trainer_class()(model=model, ref_model=None, args=config, train_dataset=dataset,
                                   processing_class=tokenizer, callbacks=[timer])
    init_s = time.perf_counter() - started
    hwm_after_init = proc_status_kib()["VmHWM"]
    assert (trainer.ref_model is None) == precompute, type(trainer.ref_model)
    ref_logps = _check_trl_sees_our_tokens(trainer, pairs, precompute)
    trainer.train()
    assert len(timer.times) == total, len(timer.times)
    assert not any(getattr(m, "gradient_checkpointing", False) for m in model.modules()), "checkpointing on"
    opt = trainer.optimizer
    opt = getattr(opt, "optimizer", opt)
    flags = {k: opt.defaults.get(k) for k in ("fused", "foreach")}
    ref = trainer.ref_model
    return {
        "step_times": timer.times[args.warmup:], "hwm_kib": timer.hwm_kib,
        "precompute_s": trainer.precompute_s if precompute else None,
        "trainer_init_s": init_s, "hwm_after_init_kib": hwm_after_init,
        "ref_logps": ref_logps,
        "reference": ("precomputed in DPOTrainer.__init__, no reference model kept" if precompute else
                      f"second model {type(getattr(ref, 'module', ref)).__name__} loaded from "
                      f"config._name_or_path, run every step"),
        "optimizer": f"{type(opt).__module__}.{type(opt).__name__} {flags} (optim={config.optim})",
    }


def _check_trl_sees_our_tokens(trainer, pairs, precompute: bool):
    """Our pairs reach the model unchanged: no EOS appended, nothing truncated or padded, the
    loss on exactly the 128 response tokens of each row. Returns the precomputed reference
    log-probs in dataset order (None without precompute)."""
    ds = trainer.train_dataset
    got = list(zip(ds["prompt_ids"], ds["chosen_ids"], ds["rejected_ids"]))
    assert got == [tuple(x) for x in pairs], "TRL changed the pairs"
    batch = trainer.data_collator([ds[i] for i in range(BATCH)])
    assert tuple(batch["input_ids"].shape) == (ROWS, SEQ_LEN), batch["input_ids"].shape
    p, c, r = pairs[0]
    assert batch["input_ids"][0].tolist() == p + c and batch["input_ids"][BATCH].tolist() == p + r
    assert bool(batch["attention_mask"].all()), "collator padded"
    assert batch["completion_mask"].sum(1).tolist() == [RESPONSE_LEN] * ROWS, "completion mask"
    assert batch["completion_mask"][:, :PROMPT_LEN].sum() == 0
    if not precompute:
        return None
    return [[float(a), float(b)] for a, b in zip(ds["ref_chosen_logps"], ds["ref_rejected_logps"])]


# ---------------------------------------------------------------------------------------------
# One configuration, in its own process.
# ---------------------------------------------------------------------------------------------

def run_one(spec: str, args) -> dict:
    framework, vocab = spec.split(":")
    vocab = int(vocab)
    ours = framework.startswith("posttrain")
    import_framework("posttrain" if ours else framework)
    if not ours:
        from trl import DPOTrainer  # noqa: F401  (its module too, before the baseline)
    tokenizer = build_tokenizer(vocab)
    pairs = build_pairs(vocab, (args.warmup + args.steps) * BATCH)
    model = build_model(vocab)
    n_params = sum(p.numel() for p in model.parameters())
    n_embed = model.get_input_embeddings().weight.numel()
    n_head = model.get_output_embeddings().weight.numel()
    with tempfile.TemporaryDirectory(prefix=f"bench-{framework}-{vocab}-") as tmp:
        tmp = Path(tmp)
        model_dir = tmp / "initial-policy"
        save_hwm = None
        if not ours:
            # TRL's reference (ref_model=None, no precompute) is loaded from the policy's
            # config._name_or_path, which an in-memory model does not have: save the initial
            # policy and point the config there, as from_pretrained would. Done for both TRL
            # variants, before the baseline, so they start from the same state.
            model.save_pretrained(model_dir)
            model.config._name_or_path = str(model_dir)
            save_hwm = proc_status_kib()["VmHWM"]
        gc.collect()
        baseline = proc_status_kib()
        if ours:
            result = run_posttrain(model, tokenizer, pairs, args, tmp / "run",
                                   shared=framework == "posttrain")
        else:
            result = run_trl(model, tokenizer, pairs, args, tmp / "run",
                             precompute=framework == "trl-precompute", model_dir=model_dir)
    end = proc_status_kib()
    import torch

    return {
        "framework": framework, "vocab": vocab, "threads": torch.get_num_threads(),
        "params": n_params, "body_params": n_params - n_embed - n_head, "head_params": n_head,
        "pairs_per_step": BATCH, "tokens_per_step": ROWS * SEQ_LEN,
        "scored_tokens_per_step": ROWS * RESPONSE_LEN,
        "baseline_rss_kib": baseline["VmRSS"], "baseline_hwm_kib": baseline["VmHWM"],
        "save_hwm_kib": save_hwm,
        "peak_kib": result.pop("hwm_kib") or end["VmHWM"], "end_hwm_kib": end["VmHWM"],
        **result,
    }


# ---------------------------------------------------------------------------------------------
# The parent: spawn, collect, print.
# ---------------------------------------------------------------------------------------------

def summarise(r: dict, peak_gflops: float) -> dict:
    times = r["step_times"]
    s_per_step = sum(times) / len(times)
    flops = model_flops_per_step(r["body_params"], r["head_params"], MODEL_KW)
    return {
        "s_per_step": s_per_step,
        "s_per_step_min": min(times), "s_per_step_max": max(times),
        "s_per_step_median": statistics.median(times),
        "steps_per_s": 1 / s_per_step,
        "pairs_per_s": r["pairs_per_step"] / s_per_step,
        "tokens_per_s": r["tokens_per_step"] / s_per_step,
        "peak_mib": r["peak_kib"] / 1024,
        "train_mib": (r["peak_kib"] - r["baseline_rss_kib"]) / 1024,
        "flops_per_step": flops,
        "achieved_gflops": flops / s_per_step / 1e9,
        "mfu": flops / s_per_step / 1e9 / peak_gflops,
    }


def _max_abs_diff(a: list, b: list) -> float:
    return max(abs(x - y) for pa, pb in zip(a, b) for x, y in zip(pa, pb))


def parent(args) -> int:
    vocabs, frameworks = selected(args, FRAMEWORKS)
    versions = library_versions()
    print(f"# DPO step benchmark: batch {BATCH} pairs = {ROWS} rows x {SEQ_LEN} tokens (prompt {PROMPT_LEN} + "
          f"response {RESPONSE_LEN}), sigmoid beta {BETA}, {args.warmup} warm-up + {args.steps} timed steps, "
          f"posttrain logprob_chunk_size={args.chunk_size}")
    print_versions(versions)
    results, before, after = measure(args, vocabs, frameworks, __file__, summarise)
    for r in results:
        if r["save_hwm_kib"] and r["save_hwm_kib"] >= r["peak_kib"]:
            print(f"# warning: {r['framework']}:{r['vocab']}: saving the initial policy set the peak")
    print()
    print("| framework | vocab | s/step | pairs/s | tokens/s | peak MiB | train MiB | MFU | ref precompute s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        pre = "— (ref model every step)" if r["precompute_s"] is None else f"{r['precompute_s']:.2f}"
        print(f"| {r['framework']} | {r['vocab']:,} | {r['s_per_step']:.3f} | {r['pairs_per_s']:.2f} | "
              f"{r['tokens_per_s']:,.0f} | {r['peak_mib']:,.0f} | {r['train_mib']:,.0f} | "
              f"{100 * r['mfu']:.1f}% | {pre} |")
    print()
    by = {(r["framework"], r["vocab"]): r for r in results}
    for vocab in vocabs:
        p = by.get(("posttrain", vocab))
        for variant, label in (("trl", "TRL"), ("trl-precompute", "TRL precompute")):
            t = by.get((variant, vocab))
            if not (p and t):
                continue
            print(f"posttrain/{label} steps per second at V={vocab:,}: {p['steps_per_s'] / t['steps_per_s']:.2f}")
            print(f"peak memory posttrain/{label} at V={vocab:,}: {p['peak_kib'] / t['peak_kib']:.2f} "
                  f"(train MiB: {p['train_mib'] / t['train_mib']:.2f})")
            if t["precompute_s"] is not None:
                print(f"reference precompute posttrain/{label} time at V={vocab:,}: "
                      f"{p['precompute_s'] / t['precompute_s']:.2f}")
            if p.get("ref_logps") and t.get("ref_logps"):
                print(f"# reference log-probs posttrain vs {label} at V={vocab:,}: max |diff| "
                      f"{_max_abs_diff(p['ref_logps'], t['ref_logps']):.2e} over {len(p['ref_logps'])} pairs")
        s = by.get(("posttrain-separate", vocab))
        if p and s:
            print(f"posttrain shared prefix/separate rows at V={vocab:,}: steps per second "
                  f"{p['steps_per_s'] / s['steps_per_s']:.2f}, peak memory {p['peak_kib'] / s['peak_kib']:.2f} "
                  f"(train MiB: {p['train_mib'] / s['train_mib']:.2f}), reference precompute time "
                  f"{p['precompute_s'] / s['precompute_s']:.2f}, first loss |diff| "
                  f"{abs(p['first_loss'] - s['first_loss']):.1e}, reference log-probs max |diff| "
                  f"{_max_abs_diff(p['ref_logps'], s['ref_logps']):.1e}")
    print()
    print(f"# s/step: mean over the timed steps (warm-up excluded); pairs/s = {BATCH} / s/step; tokens/s = "
          f"{ROWS} x {SEQ_LEN} = {ROWS * SEQ_LEN} input tokens per step / s/step")
    print("# peak MiB: the child process's VmHWM right after its last step (total: imports, model, reference "
          "precompute and TRL's reference copy included); train MiB: that minus its RSS after imports + "
          "tokenizer + data + model (+ TRL: the initial policy saved for its reference loader)")
    print("# MFU: 6 (N_body T + N_head T_scored) + 12 L H S T per step / s/step / matmul rate; T = "
          f"{ROWS * SEQ_LEN}, T_scored = {ROWS * RESPONSE_LEN}; TRL's per-step reference forward not counted; "
          "posttrain (shared prefix) computes each prompt once, fewer FLOPs than counted: its MFU and tokens/s "
          "are the separate layout's work per second")
    print("# ref precompute s: one no-grad pass of the initial policy over all pairs before training "
          "(posttrain: precompute_reference_logps; TRL: DPOTrainer._precompute_ref_logps, cache write included)")
    for r in results:
        extra = f"; trainer init {r['trainer_init_s']:.2f} s" if "trainer_init_s" in r else ""
        print(f"# {r['framework']}:{r['vocab']}: steps {', '.join(f'{x:.3f}' for x in r['step_times'])} s; "
              f"N_body = {r['body_params']:,}, N_head = {r['head_params']:,} ({r['params']:,} in all); "
              f"{r['flops_per_step'] / 1e9:.1f} GFLOP/step{extra}; reference {r['reference']}; "
              f"optimizer {r['optimizer']}")
    return finish(args, versions, (before, after), results, len(vocabs) * len(frameworks))


def main() -> int:
    return bench_main(__doc__, ",".join(FRAMEWORKS), run_one, parent)


if __name__ == "__main__":
    sys.exit(main())
