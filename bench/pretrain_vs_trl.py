#!/usr/bin/env python
"""Packed pre-training step time, throughput, peak memory and MFU: posttrain pretrain vs TRL's
SFTTrainer with packing.

    OMP_NUM_THREADS=1 .venv/bin/python bench/pretrain_vs_trl.py [--steps 10] [--warmup 2]
        [--vocab 8192,128256] [--frameworks posttrain,trl] [--json out.json]

Both frameworks train the same tiny Llama (bench/harness.py) with next-token NLL on every token
of the same pre-tokenised random documents (lengths uniform in 16..256 ids, seed 1234), packed
into rows of 256 tokens with per-document position ids (no attention across documents), batch 8
rows, AdamW lr 1e-4 constant, clipping 1.0.

- posttrain: what posttrain/stages/pretrain.py builds: mixture_rows (documents streamed into rows
  of exactly 256 tokens, a document cut at a row's end continues in the next row) through
  StreamPlan and collate_packed, NextTokenObjective, TokenLogprobs.
- trl: SFTTrainer(packing=True), its default "bfd" strategy: whole documents best-fit into rows of
  at most 256 tokens, and padding-free batches (the 8 rows flattened into one sequence with
  position ids). A row can hold fewer than 256 tokens, so TRL's tokens per step are counted from
  its batches (the rows posttrain trains are always full): compare tokens/s, not s/step.

TRL tokenises a text column itself; random ids do not survive a decode/encode round trip through
the Llama-3 tokenizer, so both frameworks get ids (TRL: an input_ids column, taken as processed).
The loss check: each framework's own loss on the first 8 documents laid out padding-free (TRL's
collator's layout: one sequence, position ids restarting, the first token of each document unscored).
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
MIN_DOC, MAX_DOC = 16, 256
LR = 1e-4
FRAMEWORKS = ("posttrain", "trl")


def build_documents(vocab: int, tokens: int) -> list[list[int]]:
    """Random documents of MIN_DOC..MAX_DOC ids, fixed seed, about `tokens` ids in all."""
    import torch

    gen = torch.Generator().manual_seed(harness.DATA_SEED)
    docs, total = [], 0
    while total < tokens:
        n = int(torch.randint(MIN_DOC, MAX_DOC + 1, (1,), generator=gen))
        docs.append(torch.randint(0, vocab, (n,), generator=gen).tolist())
        total += n
    return docs


def flops(counts: dict, tokens: float) -> float:
    return harness.model_flops(counts["body_params"], counts["head_params"], tokens, tokens, SEQ_LEN)


def prepare(framework: str, vocab: int, args, tmp: Path) -> dict:
    model = harness.build_model(vocab)
    counts = harness.param_counts(model)
    tokens = BATCH * SEQ_LEN
    # enough for every step of either packing (TRL's rows may be short), an epoch at most
    docs = build_documents(vocab, int(1.25 * (args.warmup + args.steps) * tokens))
    return {
        "model": model,
        "tokenizer": harness.build_tokenizer(vocab),
        "docs": docs,
        "counts": counts,
        "units_per_step": BATCH,
        "tokens_per_step": tokens,
        "flops_per_step": flops(counts, tokens),
        **counts,
    }


def run(framework: str, setup: dict, args, out_dir: Path) -> dict:
    return (run_posttrain if framework == "posttrain" else run_trl)(setup, args, out_dir)


def check_batch(docs: list[list[int]]) -> dict:
    """The first 8 documents padding-free: one row, position ids restarting at each document, the
    first token of each document unscored (nothing before it in its document predicts it)."""
    import torch

    docs = docs[:BATCH]
    ids = torch.tensor([[t for d in docs for t in d]])
    labels = torch.tensor([[-100 if i == 0 else t for d in docs for i, t in enumerate(d)]])
    positions = torch.tensor([[i for d in docs for i in range(len(d))]])
    return {"input_ids": ids, "labels": labels, "position_ids": positions}


def run_posttrain(setup: dict, args, out_dir: Path) -> dict:
    import functools

    from accelerate import Accelerator

    from posttrain.data.batching import collate_packed
    from posttrain.data.mixtures import mixture_rows
    from posttrain.data.plans import Layout, StreamPlan
    from posttrain.model.logprobs import TokenLogprobs
    from posttrain.objectives.sft import NextTokenObjective

    recipe = runners.posttrain_recipe(args, out_dir, LR)
    acc = Accelerator(cpu=True)
    tok = setup["tokenizer"]
    stream = functools.partial(
        mixture_rows, {"docs": setup["docs"]}, [(None, {"docs": 1.0})], BATCH, SEQ_LEN, recipe.seed
    )
    collate = functools.partial(collate_packed, pad_id=tok.pad_token_id or 0, length=SEQ_LEN)
    plan = StreamPlan(stream, collate, Layout(BATCH, 1, 1, 0), recipe.train.max_steps)
    policy, objective = TokenLogprobs(setup["model"], args.chunk_size), NextTokenObjective()
    first_loss = runners.posttrain_loss(objective, policy, check_batch(setup["docs"]), acc)
    return {**runners.run_posttrain(recipe, acc, policy, tok, plan, objective, args), "first_loss": first_loss}


def run_trl(setup: dict, args, out_dir: Path) -> dict:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    config = SFTConfig(max_length=SEQ_LEN, packing=True, **runners.trl_config_kwargs(args, out_dir, LR))
    timer = runners.trl_step_timer()
    trainer = SFTTrainer(
        model=setup["model"],
        args=config,
        train_dataset=Dataset.from_dict({"input_ids": setup["docs"]}),
        processing_class=setup["tokenizer"],
        callbacks=[timer],
    )
    assert trainer.padding_free and config.packing_strategy == "bfd", (trainer.padding_free, config.packing_strategy)
    batch = trainer.data_collator([{"input_ids": d} for d in setup["docs"][:BATCH]])
    ours = check_batch(setup["docs"])
    for key in ("input_ids", "labels", "position_ids"):
        assert batch[key].tolist() == ours[key].tolist(), f"TRL's padding-free {key} differ"
    first_loss = runners.trl_loss(trainer, batch)
    tokens = count_tokens(trainer)
    result = runners.train_trl(trainer, timer, args)
    timed = tokens[args.warmup :]
    per_step = sum(timed) / len(timed)
    return {
        **result,
        "first_loss": first_loss,
        "tokens_per_step": per_step,
        "flops_per_step": flops(setup["counts"], per_step),
        "tokens_by_step": tokens,
    }


def count_tokens(trainer) -> list[int]:
    """The tokens of each training batch TRL computes the loss on (one call a step here)."""
    counts: list[int] = []
    compute_loss = trainer.compute_loss

    def counting(model, inputs, *a, **k):
        if model.training:
            counts.append(int(inputs["input_ids"].numel()))
        return compute_loss(model, inputs, *a, **k)

    trainer.compute_loss = counting
    return counts


def run_one(spec: str, args) -> dict:
    return harness.child(spec, args, prepare, run, trl_modules=("trl.trainer.sft_trainer",))


def parent(args) -> int:
    def tokens_ratio(results, vocabs):
        by = {(r["framework"], r["vocab"]): r for r in results}
        for vocab in vocabs:
            p, t = by.get(("posttrain", vocab)), by.get(("trl", vocab))
            if p and t:
                print(f"posttrain/TRL tokens per second at V={vocab:,}: {p['tokens_per_s'] / t['tokens_per_s']:.2f}")

    return harness.report(
        args,
        __file__,
        f"packed pre-training step benchmark: batch {BATCH} rows of <= {SEQ_LEN} tokens, documents "
        f"of {MIN_DOC}..{MAX_DOC} ids",
        FRAMEWORKS,
        ["s/step", "tokens/step", "tokens/s", "peak MiB", "train MiB", "MFU", "first loss"],
        extra={"tokens/step": lambda r: f"{r['tokens_per_step']:,.0f}"},
        more=tokens_ratio,
        notes=(
            "tokens/step: posttrain's rows are full (8 x 256); TRL's, counted from its padding-free batches over "
            "the timed steps: compare tokens/s; first loss: each framework's loss on the first 8 documents laid "
            "out padding-free",
            "MFU: (6 N T + 12 L H S T) per step with T = tokens/step, S = 256 / s/step / matmul rate",
        ),
    )


if __name__ == "__main__":
    sys.exit(harness.main(__doc__, ",".join(FRAMEWORKS), run_one, parent))
