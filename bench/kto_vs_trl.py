#!/usr/bin/env python
"""KTO step time, throughput, peak memory and MFU: posttrain's KTO path vs TRL's KTOTrainer.

    OMP_NUM_THREADS=1 .venv/bin/python bench/kto_vs_trl.py [--steps 10] [--warmup 2]
        [--vocab 8192,128256] [--frameworks posttrain,trl,trl-precompute] [--json out.json]

All frameworks train the same tiny Llama (bench/harness.py) with KTO (Ethayarajh et al. 2024;
beta 0.1, desirable and undesirable weight 1) on the same pre-tokenised unpaired examples: a
random prompt of 128 ids and a random completion of 128 ids, labelled desirable and undesirable
in turn; the KL estimate's mismatched completion of example i is that of example i-1 within its
block of 8 (TRL's rotation), so both frameworks score the same mismatched rows. Batch 8 examples
(8 matched + 8 mismatched rows of 256 tokens), AdamW lr 1e-6 constant, clipping 1.0.

- posttrain: the units of posttrain/stages/kto.py (UnpairedExample, collate_unpaired), reference
  log-probs of matched and mismatched rows precomputed once (what attach_reference_logps does on
  a cache miss), then loop.run with UnpairedObjective (z0 from the step's mismatched rows).
- trl: KTOTrainer as it runs by default: a second model, loaded from the saved initial policy,
  scores the matched and mismatched rows at every step.
- trl-precompute: KTOTrainer with precompute_ref_log_probs=True.

TRL 1.16's KTOTrainer has no path for pre-tokenised rows (_prepare_dataset always tokenises the
text): a subclass returns our dataset, which already has the columns it writes (prompt_ids,
completion_ids, label, KL_completion_ids); the first collated batch is checked against our ids.
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

PROMPT_LEN = RESPONSE_LEN = 128
SEQ_LEN = PROMPT_LEN + RESPONSE_LEN
ROWS = 2 * BATCH  # matched + mismatched rows per step
BETA = 0.1
LR = 1e-6
FRAMEWORKS = ("posttrain", "trl", "trl-precompute")


def build_examples(vocab: int, n: int) -> list[dict]:
    """n examples: prompt and completion ids, label True/False in turn, and the KL completion
    (the previous example's completion within each block of BATCH, TRL's rotation)."""
    ids = harness.random_ids(vocab, (n, 2, PROMPT_LEN))
    rows = [{"prompt_ids": p, "completion_ids": c, "label": i % 2 == 0} for i, (p, c) in enumerate(ids)]
    for start in range(0, n, BATCH):
        block = rows[start : start + BATCH]
        for k, row in enumerate(block):
            row["KL_completion_ids"] = block[k - 1]["completion_ids"]
    return rows


def prepare(framework: str, vocab: int, args, tmp: Path) -> dict:
    model = harness.build_model(vocab)
    counts = harness.param_counts(model)
    setup = {
        "model": model,
        "tokenizer": harness.build_tokenizer(vocab),
        "examples": build_examples(vocab, (args.warmup + args.steps) * BATCH),
        "units_per_step": BATCH,
        "tokens_per_step": ROWS * SEQ_LEN,
        **counts,
        # the gradient flows through the matched rows; the mismatched rows' forward (z0) is
        # counted as 2 N T (no backward)
        "flops_per_step": harness.model_flops(
            counts["body_params"], counts["head_params"], BATCH * SEQ_LEN, BATCH * RESPONSE_LEN, SEQ_LEN
        )
        * 4
        / 3,
    }
    if framework.startswith("trl"):
        setup["save_hwm_kib"] = runners.save_initial_policy(model, tmp)
    return setup


def run(framework: str, setup: dict, args, out_dir: Path) -> dict:
    if framework == "posttrain":
        return run_posttrain(setup, args, out_dir)
    return run_trl(setup, args, out_dir, precompute=framework == "trl-precompute")


def run_posttrain(setup: dict, args, out_dir: Path) -> dict:
    import functools

    from accelerate import Accelerator

    from posttrain.data.batching import IGNORE, Example
    from posttrain.data.plans import EpochPlan, Layout
    from posttrain.data.unpaired import UnpairedExample, collate_unpaired
    from posttrain.model.logprobs import TokenLogprobs
    from posttrain.model.reference import precompute_reference_logps
    from posttrain.objectives.pairwise import UnpairedObjective, preference_config

    recipe = runners.posttrain_recipe(args, out_dir, LR, "preference.loss=kto", f"preference.beta={BETA}")
    acc = Accelerator(cpu=True)
    mask = [IGNORE] * PROMPT_LEN
    units = [
        UnpairedExample(
            [],
            [],
            e["label"],
            matched=Example(e["prompt_ids"] + e["completion_ids"], mask + e["completion_ids"]),
            mismatched=Example(e["prompt_ids"] + e["KL_completion_ids"], mask + e["KL_completion_ids"]),
        )
        for e in setup["examples"]
    ]
    collate = functools.partial(collate_unpaired, pad_id=setup["tokenizer"].pad_token_id or 0)
    started = time.perf_counter()
    precompute_reference_logps(
        setup["model"], units, collate, ("matched", "mismatched"), BATCH, acc.device, args.chunk_size
    )
    precompute_s = time.perf_counter() - started
    policy = TokenLogprobs(setup["model"], args.chunk_size)
    objective = UnpairedObjective(preference_config(recipe.preference))
    first_loss = runners.posttrain_loss(objective, policy, collate(units[:BATCH]), acc)
    plan = EpochPlan(units, collate, Layout(BATCH, 1, 1, 0), recipe.seed, recipe.train.max_steps, recipe.train.epochs)
    return {
        **runners.run_posttrain(recipe, acc, policy, setup["tokenizer"], plan, objective, args),
        "first_loss": first_loss,
        "precompute_s": precompute_s,
        "ref_logps": [[u.ref_logps["matched"], u.ref_logps["mismatched"]] for u in units],
    }


def run_trl(setup: dict, args, out_dir: Path, precompute: bool) -> dict:
    from datasets import Dataset
    from trl import KTOConfig, KTOTrainer

    examples = setup["examples"]
    config = KTOConfig(
        max_length=SEQ_LEN,
        beta=BETA,
        loss_type="kto",
        desirable_weight=1.0,
        undesirable_weight=1.0,
        precompute_ref_log_probs=precompute,
        **runners.trl_config_kwargs(args, out_dir, LR),
    )
    dataset = Dataset.from_dict({k: [e[k] for e in examples] for k in examples[0]})
    timer = runners.trl_step_timer()
    trainer = runners.pretokenised(KTOTrainer)(
        model=setup["model"],
        ref_model=None,
        args=config,
        train_dataset=dataset,
        processing_class=setup["tokenizer"],
        callbacks=[timer],
    )
    assert (trainer.ref_model is None) == precompute, type(trainer.ref_model)
    ds = trainer.train_dataset
    batch = trainer.data_collator([ds[i] for i in range(BATCH)])
    first = examples[0]
    assert batch["input_ids"][0].tolist() == first["prompt_ids"] + first["completion_ids"], "TRL changed the ids"
    assert batch["KL_input_ids"][0].tolist() == first["prompt_ids"] + first["KL_completion_ids"]
    assert batch["completion_mask"].sum(1).tolist() == [RESPONSE_LEN] * BATCH and bool(batch["attention_mask"].all())
    first_loss = runners.trl_loss(trainer, batch)
    ref = [[a, b] for a, b in zip(ds["ref_logps"], ds["ref_KL_logps"])] if precompute else None
    return {
        **runners.train_trl(trainer, timer, args),
        "first_loss": first_loss,
        "precompute_s": trainer.precompute_s,
        "ref_logps": ref,
    }


def run_one(spec: str, args) -> dict:
    return harness.child(spec, args, prepare, run, trl_modules=("trl.trainer.kto_trainer",))


def parent(args) -> int:
    def reference_agreement(results, vocabs):
        by = {(r["framework"], r["vocab"]): r for r in results}
        for vocab in vocabs:
            p, t = by.get(("posttrain", vocab)), by.get(("trl-precompute", vocab))
            if p and t and t.get("ref_logps"):
                # TRL keeps its dataset order (sequential sampler), so row i is example i on both sides
                print(
                    f"# reference log-probs (matched, mismatched) posttrain vs TRL precompute at V={vocab:,}: "
                    f"max |diff| {harness.max_abs_diff(p['ref_logps'], t['ref_logps']):.2e}"
                )

    return harness.report(
        args,
        __file__,
        f"KTO step benchmark: batch {BATCH} examples (prompt {PROMPT_LEN} + completion {RESPONSE_LEN}, "
        f"+ {BATCH} mismatched rows for z0), beta {BETA}",
        FRAMEWORKS,
        ["s/step", "tokens/s", "peak MiB", "train MiB", "MFU", "first loss", "ref precompute s"],
        extra={"ref precompute s": harness.precompute_cell},
        peers={"trl": "TRL", "trl-precompute": "TRL precompute"},
        loss_peers=("trl", "trl-precompute"),
        more=reference_agreement,
        notes=(
            f"tokens/s = {ROWS} x {SEQ_LEN} input tokens per step (matched + mismatched rows) / s/step; first loss: "
            "each framework's loss on examples 0-7 before training (policy = reference: 0.5)",
            "MFU: 6 (N_body T + N_head T_scored) + 12 L H S T over the 8 matched rows, x 4/3 for the mismatched "
            "rows' forward; TRL's per-step reference forward is not counted",
        ),
    )


if __name__ == "__main__":
    sys.exit(harness.main(__doc__, ",".join(FRAMEWORKS), run_one, parent))
