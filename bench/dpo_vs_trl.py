#!/usr/bin/env python
"""DPO step time, throughput, peak memory and MFU: posttrain's DPO path vs TRL's DPOTrainer.

    OMP_NUM_THREADS=1 .venv/bin/python bench/dpo_vs_trl.py [--steps 10] [--warmup 2]
        [--vocab 8192,128256] [--frameworks posttrain,posttrain-separate,trl,trl-precompute]
        [--chunk-size 256]
        [--json out.json]

All frameworks train the same tiny Llama as bench/sft_vs_trl.py (bench/harness.py) (hidden 256, 4 layers, 4 heads /
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
The model, tokenizer, memory, matmul and reporting helpers are bench/harness.py's. See bench/README.md.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402  (stdlib only at import; torch is imported lazily)
import runners  # noqa: E402
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
from harness import BATCH  # noqa: E402

FRAMEWORKS = ("posttrain", "posttrain-separate", "trl", "trl-precompute")


# ---------------------------------------------------------------------------------------------
# TRL: DPOTrainer on a pre-tokenised datasets.Dataset.
# ---------------------------------------------------------------------------------------------


def run_trl(model, tokenizer, pairs, args, out_dir: Path, precompute: bool, model_dir: Path) -> dict:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    config = DPOConfig(
        max_length=SEQ_LEN,
        beta=BETA,
        loss_type=["sigmoid"],
        precompute_ref_log_probs=precompute,
        **runners.trl_config_kwargs(args, out_dir, LR),
    )
    dataset = Dataset.from_dict(
        {
            "prompt_ids": [p for p, _, _ in pairs],
            "chosen_ids": [c for _, c, _ in pairs],
            "rejected_ids": [r for _, _, r in pairs],
        }
    )
    # ref_model=None: without precompute, TRL builds the reference itself by loading the policy's
    # `config._name_or_path` again (a second full copy of the weights); that is the initial policy
    # saved by prepare() before training, as if the user had loaded the policy from that directory.
    assert model.config._name_or_path == str(model_dir)
    timer = runners.trl_step_timer()
    started = time.perf_counter()
    trainer = runners.pretokenised(DPOTrainer)(
        model=model, ref_model=None, args=config, train_dataset=dataset, processing_class=tokenizer, callbacks=[timer]
    )
    init_s = time.perf_counter() - started
    hwm_after_init = harness.proc_status_kib()["VmHWM"]
    assert (trainer.ref_model is None) == precompute, type(trainer.ref_model)
    ref_logps = _check_trl_sees_our_tokens(trainer, pairs, precompute)
    result = runners.train_trl(trainer, timer, args)
    ref = trainer.ref_model
    return {
        **result,
        "precompute_s": trainer.precompute_s if precompute else None,
        "trainer_init_s": init_s,
        "hwm_after_init_kib": hwm_after_init,
        "ref_logps": ref_logps,
        "reference": (
            "precomputed in DPOTrainer.__init__, no reference model kept"
            if precompute
            else f"second model {type(getattr(ref, 'module', ref)).__name__} loaded from "
            f"config._name_or_path, run every step"
        ),
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


def prepare(framework: str, vocab: int, args, tmp: Path) -> dict:
    model = harness.build_model(vocab)
    counts = harness.param_counts(model)
    setup = {
        "model": model,
        "tokenizer": harness.build_tokenizer(vocab),
        "pairs": build_pairs(vocab, (args.warmup + args.steps) * BATCH),
        "model_dir": tmp / "initial-policy",
        "units_per_step": BATCH,
        "tokens_per_step": ROWS * SEQ_LEN,
        **counts,
        "flops_per_step": model_flops_per_step(counts["body_params"], counts["head_params"]),
    }
    if framework.startswith("trl"):
        # TRL's reference (ref_model=None, no precompute) is loaded from the policy's
        # config._name_or_path. Done for both TRL variants, before the baseline, so they start
        # from the same state.
        setup["save_hwm_kib"] = runners.save_initial_policy(model, tmp)
    return setup


def run(framework: str, setup: dict, args, out_dir: Path) -> dict:
    s = setup
    if framework.startswith("posttrain"):
        return run_posttrain(s["model"], s["tokenizer"], s["pairs"], args, out_dir, shared=framework == "posttrain")
    return run_trl(
        s["model"],
        s["tokenizer"],
        s["pairs"],
        args,
        out_dir,
        precompute=framework == "trl-precompute",
        model_dir=s["model_dir"],
    )


def run_one(spec: str, args) -> dict:
    return harness.child(spec, args, prepare, run, trl_modules=("trl.trainer.dpo_trainer",))


# ---------------------------------------------------------------------------------------------
# The parent: spawn, collect, print.
# ---------------------------------------------------------------------------------------------


def parent(args) -> int:
    return harness.report(
        args,
        __file__,
        f"DPO step benchmark: batch {BATCH} pairs = {ROWS} rows x {SEQ_LEN} tokens (prompt "
        f"{PROMPT_LEN} + response {RESPONSE_LEN}), sigmoid beta {BETA}",
        FRAMEWORKS,
        ["s/step", "pairs/s", "tokens/s", "peak MiB", "train MiB", "MFU", "ref precompute s"],
        extra={"pairs/s": lambda r: f"{r['units_per_s']:.2f}", "ref precompute s": harness.precompute_cell},
        peers={"trl": "TRL", "trl-precompute": "TRL precompute"},
        loss_peers=(),
        more=reference_lines,
        notes=(
            f"s/step: mean over the timed steps (warm-up excluded); pairs/s = {BATCH} / s/step; tokens/s = "
            f"{ROWS} x {SEQ_LEN} = {ROWS * SEQ_LEN} input tokens per step / s/step",
            "peak MiB: the child process's VmHWM right after its last step (total: imports, model, reference "
            "precompute and TRL's reference copy included); train MiB: that minus its RSS after imports + "
            "tokenizer + data + model (+ TRL: the initial policy saved for its reference loader)",
            "MFU: 6 (N_body T + N_head T_scored) + 12 L H S T per step / s/step / matmul rate; T = "
            f"{ROWS * SEQ_LEN}, T_scored = {ROWS * RESPONSE_LEN}; TRL's per-step reference forward not counted; "
            "posttrain (shared prefix) computes each prompt once, fewer FLOPs than counted: its MFU and tokens/s "
            "are the separate layout's work per second",
            "ref precompute s: one no-grad pass of the initial policy over all pairs before training "
            "(posttrain: precompute_reference_logps; TRL: DPOTrainer._precompute_ref_logps, cache write included)",
        ),
    )


def reference_lines(results: list[dict], vocabs: list[int]) -> None:
    """Reference precompute time and log-probs against TRL's, shared prefix against separate rows,
    and each run's reference and trainer set-up."""
    by = {(r["framework"], r["vocab"]): r for r in results}
    for vocab in vocabs:
        p, s, t = (by.get((f, vocab)) for f in ("posttrain", "posttrain-separate", "trl-precompute"))
        if p and t:
            print(
                f"reference precompute posttrain/TRL precompute time at V={vocab:,}: "
                f"{p['precompute_s'] / t['precompute_s']:.2f}"
            )
            print(
                f"# reference log-probs posttrain vs TRL precompute at V={vocab:,}: max |diff| "
                f"{harness.max_abs_diff(p['ref_logps'], t['ref_logps']):.2e} over {len(p['ref_logps'])} pairs"
            )
        if p and s:
            print(
                f"posttrain shared prefix/separate rows at V={vocab:,}: steps per second "
                f"{p['steps_per_s'] / s['steps_per_s']:.2f}, peak memory {p['peak_kib'] / s['peak_kib']:.2f} "
                f"(train MiB: {p['train_mib'] / s['train_mib']:.2f}), reference precompute time "
                f"{p['precompute_s'] / s['precompute_s']:.2f}, first loss |diff| "
                f"{abs(p['first_loss'] - s['first_loss']):.1e}, reference log-probs max |diff| "
                f"{harness.max_abs_diff(p['ref_logps'], s['ref_logps']):.1e}"
            )
    for r in results:
        if r.get("save_hwm_kib") and r["save_hwm_kib"] >= r["peak_kib"]:
            print(f"# warning: {r['framework']}:{r['vocab']}: saving the initial policy set the peak")
        init = f"; trainer init {r['trainer_init_s']:.2f} s" if "trainer_init_s" in r else ""
        print(
            f"# {r['framework']}:{r['vocab']}: N_body = {r['body_params']:,}, N_head = {r['head_params']:,} "
            f"({r['params']:,} in all){init}; reference {r['reference']}"
        )


if __name__ == "__main__":
    sys.exit(harness.main(__doc__, ",".join(FRAMEWORKS), run_one, parent))
