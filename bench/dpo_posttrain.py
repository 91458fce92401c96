"""The pairs, the FLOP count and the posttrain runner of bench/dpo_vs_trl.py (split out to keep
each file under 400 lines). posttrain runs in both layouts of its preference pairs: the default
shared prefix (data/shared_prefix.py: one row per pair, prompt computed once) and, as
`posttrain-separate`, preference.shared_prefix=false (a chosen row and a rejected row per pair)."""

from __future__ import annotations

import time
from pathlib import Path

import harness
import runners
from harness import BATCH, proc_status_kib

PROMPT_LEN = 128
RESPONSE_LEN = 128
SEQ_LEN = PROMPT_LEN + RESPONSE_LEN  # per row: prompt + one response
ROWS = 2 * BATCH  # a step scores the chosen and the rejected row of every pair
DATA_SEED = 1234
BETA = 0.1
LR = 1e-6


# ---------------------------------------------------------------------------------------------
# The shared data: pre-tokenised random pairs.
# ---------------------------------------------------------------------------------------------


def build_pairs(vocab: int, n_pairs: int) -> list[tuple[list[int], list[int], list[int]]]:
    """n_pairs (prompt, chosen, rejected) id lists of 128 ids each in [0, vocab), fixed seed."""
    import torch

    gen = torch.Generator().manual_seed(DATA_SEED)
    ids = torch.randint(0, vocab, (n_pairs, 3, PROMPT_LEN), generator=gen).tolist()
    return [(p, c, r) for p, c, r in ids]


def model_flops_per_step(n_body: int, n_head: int, cfg: dict = harness.MODEL_KW) -> float:
    """6 N T + 12 L H S T over the policy's training rows, with the LM head counted only at the
    positions that carry a loss (neither framework applies it anywhere else):
    6 (N_body T + N_head T_scored) + 12 L H S T; N_body = decoder parameters without the input
    embedding, N_head = the untied LM head. The reference forward is not counted."""
    return harness.model_flops(n_body, n_head, ROWS * SEQ_LEN, ROWS * RESPONSE_LEN, SEQ_LEN, cfg)


# ---------------------------------------------------------------------------------------------
# posttrain: the units of stages/dpo.py, reference log-probs once, then the real loop.
# ---------------------------------------------------------------------------------------------


def run_posttrain(model, tokenizer, pairs, args, out_dir: Path, shared: bool = True) -> dict:
    import functools

    from accelerate import Accelerator

    from posttrain.data.batching import IGNORE, Example
    from posttrain.data.plans import EpochPlan, Layout
    from posttrain.data.preference import PairExample, collate_pairs
    from posttrain.model.logprobs import TokenLogprobs
    from posttrain.model.reference import precompute_reference_logps
    from posttrain.objectives.pairwise import PairwiseObjective, preference_config
    from posttrain.objectives.registry import get_preference_loss

    recipe = runners.posttrain_recipe(
        args,
        out_dir,
        LR,
        "preference.loss=sigmoid",
        f"preference.beta={BETA}",
        f"preference.shared_prefix={str(shared).lower()}",
    )
    acc = Accelerator(cpu=True)
    # As tokenize_completion builds them: prompt + response, labels only on the response tokens.
    units = [
        PairExample(
            prompt=[],
            chosen=Example(p + c, [IGNORE] * PROMPT_LEN + c),
            rejected=Example(p + r, [IGNORE] * PROMPT_LEN + r),
        )
        for p, c, r in pairs
    ]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    collate = functools.partial(collate_pairs, pad_id=pad_id, shared=recipe.preference.shared_prefix)
    spec = get_preference_loss(recipe.preference.loss)
    assert spec.needs_reference and not spec.needs_reference_sample and not spec.needs_rewards

    # What train/reference.py's attach_reference_logps computes on a cache miss for a fresh
    # full fine-tuning run (the initial policy itself, batches of micro_batch_size pairs); the
    # on-disk cache around it is left out.
    started = time.perf_counter()
    precompute_reference_logps(
        model.to(acc.device),
        units,
        collate,
        ("chosen", "rejected"),
        recipe.train.micro_batch_size,
        acc.device,
        args.chunk_size,
    )
    precompute_s = time.perf_counter() - started
    ref_logps = [[u.ref_logps["chosen"], u.ref_logps["rejected"]] for u in units]
    hwm_after_precompute = proc_status_kib()["VmHWM"]

    mb = collate(units[:BATCH])
    # shared: one row per pair, prompt[:-1] + (last prompt token + response) for each response
    shape = (BATCH, PROMPT_LEN + 1 + 2 * RESPONSE_LEN) if shared else (ROWS, SEQ_LEN)
    assert tuple(mb["input_ids"].shape) == shape, mb["input_ids"].shape
    assert int((mb["labels"][:, 1:] != IGNORE).sum()) == ROWS * RESPONSE_LEN

    plan = EpochPlan(units, collate, Layout(BATCH, 1, 1, 0), recipe.seed, recipe.train.max_steps, recipe.train.epochs)
    policy = TokenLogprobs(model, recipe.train.logprob_chunk_size)
    objective = PairwiseObjective(spec, preference_config(recipe.preference))
    return {
        **runners.run_posttrain(recipe, acc, policy, tokenizer, plan, objective, args),
        "precompute_s": precompute_s,
        "hwm_after_precompute_kib": hwm_after_precompute,
        "ref_logps": ref_logps,
        "reference": "precomputed once (posttrain.model.reference.precompute_reference_logps)",
        "layout": "shared prefix, one row per pair" if shared else "separate rows for chosen and rejected",
    }
