#!/usr/bin/env python
"""SFT step time, throughput, peak memory and MFU: posttrain's training loop vs TRL's SFTTrainer.

    OMP_NUM_THREADS=1 .venv/bin/python bench/sft_vs_trl.py [--steps 10] [--warmup 2]
        [--vocab 8192,128256] [--frameworks posttrain,trl] [--chunk-size 256] [--json out.json]

Both frameworks train the same tiny Llama (hidden 256, 4 layers, 4 heads / 2 KV heads, untied
head, fp32, sdpa; torch.manual_seed(0)) on the same pre-tokenised random sequences of exactly 256
tokens (loss on every token), batch 8, AdamW lr 1e-4 constant, grad clipping at 1.0, no eval,
no checkpoints. Each (framework, vocabulary) pair runs in a fresh child process of this script
(`--one FRAMEWORK:VOCAB`), so the process-wide, monotonic VmHWM measures that run alone. The parent
measures a fp32 matmul rate for MFU, runs the children one after another and prints the table.

See bench/README.md for what each number means and how it is measured.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BATCH = 8
SEQ_LEN = 256
DATA_SEED = 1234
FRAMEWORKS = ("posttrain", "trl")
MODEL_KW = dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                intermediate_size=688, max_position_embeddings=512, tie_word_embeddings=False)


# ---------------------------------------------------------------------------------------------
# Memory: the kernel's own high-water mark of this process's resident set.
# ---------------------------------------------------------------------------------------------

def proc_status_kib() -> dict[str, int]:
    """VmRSS and VmHWM of this process in KiB (ru_maxrss as the high-water mark off Linux)."""
    out: dict[str, int] = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(rest.split()[0])  # "12345 kB"
    except OSError:
        pass
    if "VmHWM" not in out:
        out["VmHWM"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    out.setdefault("VmRSS", out["VmHWM"])
    return out


# ---------------------------------------------------------------------------------------------
# The shared setup: model, data, tokenizer.
# ---------------------------------------------------------------------------------------------

def build_model(vocab: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab, attn_implementation="sdpa", **MODEL_KW)
    model = LlamaForCausalLM(config).float()
    assert model.config._attn_implementation == "sdpa", model.config._attn_implementation
    return model


def build_data(vocab: int, n_rows: int) -> list[list[int]]:
    """n_rows sequences of exactly SEQ_LEN token ids in [0, vocab), from a fixed seed."""
    import torch

    gen = torch.Generator().manual_seed(DATA_SEED)
    return torch.randint(0, vocab, (n_rows, SEQ_LEN), generator=gen).tolist()


def build_tokenizer(vocab: int):
    """The real Llama-3 tokenizer at 128,256; at other sizes a word-level tokenizer with exactly
    `vocab` entries (ids 0..vocab-1), so no id the tokenizer knows lies outside the model's
    vocabulary. The data are pre-tokenised: the tokenizer is never asked to encode anything, TRL
    only reads its pad token."""
    from posttrain.model.llama3_tokenizer import llama3_tokenizer

    if vocab == 128_256:
        tok = llama3_tokenizer()
        assert len(tok) == vocab, len(tok)
        return tok
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>", "<unk>"]
    table = {name: i for i, name in enumerate(specials)}
    table.update({f"t{i}": i for i in range(len(specials), vocab)})
    backend = Tokenizer(models.WordLevel(vocab=table, unk_token="<unk>"))
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>",
                                  unk_token="<unk>")
    assert len(tok) == vocab and tok.pad_token_id == 0, (len(tok), tok.pad_token_id)
    return tok


def matmul_gflops(size: int = 2048, seconds: float = 1.0) -> float:
    """Sustained fp32 matmul rate of this process's torch (same thread count as the children)."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(2):
        torch.matmul(a, b)
    n, start = 0, time.perf_counter()
    while True:
        torch.matmul(a, b)
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return 2 * size**3 * n / elapsed / 1e9


def model_flops_per_step(n_params: int, cfg: dict, tokens: int) -> float:
    """PaLM / Chinchilla: 6 N T + 12 L H S T, N = non-embedding parameters + LM head."""
    return 6 * n_params * tokens + 12 * cfg["num_hidden_layers"] * cfg["hidden_size"] * SEQ_LEN * tokens


# ---------------------------------------------------------------------------------------------
# posttrain: the real loop (TrainJob + EpochPlan + NextTokenObjective + TokenLogprobs).
# ---------------------------------------------------------------------------------------------

class _HighWaterAfterLastStep:
    """Passes a plan through unchanged and reads VmHWM when the loop asks for the step after the
    last, i.e. right after the last step and before the loop saves the final model."""

    def __init__(self, plan):
        self.plan, self.total_steps, self.hwm_kib = plan, plan.total_steps, None

    def steps(self, start: int = 0):
        yield from self.plan.steps(start)
        self.hwm_kib = proc_status_kib()["VmHWM"]


def run_posttrain(model, tokenizer, data, args, out_dir: Path) -> dict:
    import functools

    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from posttrain.config import load_recipe
    from posttrain.data.batching import Example, collate_padded
    from posttrain.data.plans import EpochPlan, Layout
    from posttrain.log import read_metrics
    from posttrain.model.logprobs import TokenLogprobs
    from posttrain.objectives.sft import NextTokenObjective
    from posttrain.train import loop

    total = args.warmup + args.steps
    recipe = load_recipe(None, [
        f"train.micro_batch_size={BATCH}", "train.grad_accum_steps=1", f"train.max_steps={total}",
        "train.lr=1e-4", "train.schedule=constant", "train.warmup_steps=0",
        "train.max_grad_norm=1.0", "train.weight_decay=0.0",
        "train.betas=[0.9,0.999]",  # TRL's (transformers.Trainer's) AdamW betas
        f"train.logprob_chunk_size={args.chunk_size}", "train.log_every=1",
        "log.tensorboard=false", "seed=0", f"output_dir={out_dir}"])
    acc = Accelerator(cpu=True)
    set_seed(recipe.seed)
    units = [Example(input_ids=list(row), labels=list(row)) for row in data]  # loss on every token
    layout = Layout(BATCH, 1, acc.num_processes, acc.process_index)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    plan = _HighWaterAfterLastStep(EpochPlan(units, functools.partial(collate_padded, pad_id=pad_id),
                                             layout, recipe.seed, recipe.train.max_steps,
                                             recipe.train.epochs))
    job = loop.TrainJob(recipe=recipe, out_dir=out_dir, accelerator=acc,
                        policy=TokenLogprobs(model, recipe.train.logprob_chunk_size),
                        tokenizer=tokenizer, plan=plan, objective=NextTokenObjective())
    loop.run(job)
    rows = [r for r in read_metrics(out_dir) if "step_time_s" in r]
    assert [r["step"] for r in rows] == list(range(1, total + 1)), [r["step"] for r in rows]
    return {
        "step_times": [r["step_time_s"] for r in rows if r["step"] > args.warmup],
        "hwm_kib": plan.hwm_kib,
        "first_loss": rows[0]["loss"],
        "optimizer": "torch.optim.AdamW (torch defaults: no fused/foreach on CPU)",
    }


# ---------------------------------------------------------------------------------------------
# TRL: SFTTrainer on a pre-tokenised datasets.Dataset.
# ---------------------------------------------------------------------------------------------

def trl_step_timer():
    """A TRL TrainerCallback that times each optimizer step and reads VmHWM after the last one."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times: list[float] = []
            self.hwm_kib = None
            self._start = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            self._start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter() - self._start)
            if state.global_step == state.max_steps:
                self.hwm_kib = proc_status_kib()["VmHWM"]

    return StepTimer()


def run_trl(model, tokenizer, data, args, out_dir: Path) -> dict:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    total = args.warmup + args.steps

    config = SFTConfig(
        output_dir=str(out_dir), per_device_train_batch_size=BATCH, gradient_accumulation_steps=1,
        max_length=SEQ_LEN, packing=False, learning_rate=1e-4, lr_scheduler_type="constant",
        warmup_steps=0, report_to=[], save_strategy="no", eval_strategy="no",
        logging_steps=10**6, max_steps=total, dataloader_num_workers=0, use_cpu=True, bf16=False,
        max_grad_norm=1.0, seed=0,
        # TRL's SFTConfig turns activation checkpointing on by default; posttrain's recipe default
        # (model.gradient_checkpointing) is off, and the comparison is of the same computation.
        gradient_checkpointing=False,
    )
    timer = trl_step_timer()
    trainer = SFTTrainer(model=model, args=config, train_dataset=Dataset.from_dict({"input_ids": data}),
                         processing_class=tokenizer, callbacks=[timer])
    _check_trl_sees_our_tokens(trainer, data)
    trainer.train()
    assert len(timer.times) == total, len(timer.times)
    opt = trainer.optimizer
    opt = getattr(opt, "optimizer", opt)
    flags = {k: opt.defaults.get(k) for k in ("fused", "foreach")}
    return {"step_times": timer.times[args.warmup:], "hwm_kib": timer.hwm_kib,
            "optimizer": f"{type(opt).__module__}.{type(opt).__name__} {flags} (optim={config.optim})"}


def _check_trl_sees_our_tokens(trainer, data: list[list[int]]) -> None:
    """TRL prepares a pre-tokenised dataset (labels column, truncation, filter) and collates it
    itself: make sure no EOS was appended, nothing truncated, masked or padded."""
    ds = trainer.train_dataset
    rows = ds["input_ids"]
    assert sorted(map(tuple, rows)) == sorted(map(tuple, data)), "TRL changed the token sequences"
    assert ds["labels"] == rows, "TRL masked some labels"
    batch = trainer.data_collator([ds[i] for i in range(BATCH)])
    assert tuple(batch["input_ids"].shape) == (BATCH, SEQ_LEN), batch["input_ids"].shape
    assert bool((batch["labels"] == batch["input_ids"]).all()), "collated labels differ from input ids"
    if "attention_mask" in batch:
        assert bool(batch["attention_mask"].all()), "collator padded"


# ---------------------------------------------------------------------------------------------
# One configuration, in its own process.
# ---------------------------------------------------------------------------------------------

def import_framework(framework: str) -> None:
    """Import what the framework needs before the memory baseline is read, so that imports count
    in its peak but not in its training memory."""
    import torch  # noqa: F401
    if framework == "posttrain":
        import accelerate  # noqa: F401
        import posttrain.train.loop  # noqa: F401
    else:
        import datasets  # noqa: F401
        import trl  # noqa: F401


def run_one(spec: str, args) -> dict:
    framework, vocab = spec.split(":")
    vocab = int(vocab)
    import_framework(framework)
    tokenizer = build_tokenizer(vocab)
    data = build_data(vocab, (args.warmup + args.steps) * BATCH)
    model = build_model(vocab)
    n_params = sum(p.numel() for p in model.parameters())
    n_flop_params = n_params - model.get_input_embeddings().weight.numel()  # untied: head counted
    gc.collect()
    baseline = proc_status_kib()
    with tempfile.TemporaryDirectory(prefix=f"bench-{framework}-{vocab}-") as tmp:
        runner = run_posttrain if framework == "posttrain" else run_trl
        result = runner(model, tokenizer, data, args, Path(tmp))
    end = proc_status_kib()
    import torch

    return {
        "framework": framework, "vocab": vocab, "threads": torch.get_num_threads(),
        "params": n_params, "flop_params": n_flop_params, "tokens_per_step": BATCH * SEQ_LEN,
        "baseline_rss_kib": baseline["VmRSS"], "baseline_hwm_kib": baseline["VmHWM"],
        "peak_kib": result.pop("hwm_kib") or end["VmHWM"], "end_hwm_kib": end["VmHWM"],
        **result,
    }


# ---------------------------------------------------------------------------------------------
# The parent: spawn, collect, print.
# ---------------------------------------------------------------------------------------------

def spawn(spec: str, args, script: str = __file__) -> dict | None:
    """Run one configuration of `script` in a fresh process (its own memory high-water mark)."""
    with tempfile.TemporaryDirectory(prefix="bench-result-") as tmp:
        result_path = Path(tmp) / "result.json"
        cmd = [sys.executable, os.path.abspath(script), "--one", spec, "--result", str(result_path),
               "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--chunk-size", str(args.chunk_size)]
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
        started = time.perf_counter()
        if args.verbose:
            proc = subprocess.run(cmd, env=env)
            output = ""
        else:
            proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            output = proc.stdout
        wall = time.perf_counter() - started
        if proc.returncode != 0 or not result_path.exists():
            print(f"[{spec}] FAILED (exit {proc.returncode}); last output:\n{output[-4000:]}", file=sys.stderr)
            return None
        result = json.loads(result_path.read_text())
        result["process_wall_s"] = wall
        return result


def summarise(r: dict, peak_gflops: float) -> dict:
    times = r["step_times"]
    s_per_step = sum(times) / len(times)
    flops = model_flops_per_step(r["flop_params"], MODEL_KW, r["tokens_per_step"])
    return {
        "s_per_step": s_per_step,
        "s_per_step_min": min(times), "s_per_step_max": max(times),
        "s_per_step_median": statistics.median(times),
        "tokens_per_s": r["tokens_per_step"] / s_per_step,
        "peak_mib": r["peak_kib"] / 1024,
        "train_mib": (r["peak_kib"] - r["baseline_rss_kib"]) / 1024,
        "flops_per_step": flops,
        "achieved_gflops": flops / s_per_step / 1e9,
        "mfu": flops / s_per_step / 1e9 / peak_gflops,
    }


def selected(args, known: tuple[str, ...]) -> tuple[list[int], list[str]]:
    """(vocabulary sizes, frameworks) from --vocab and --frameworks; an unknown framework exits."""
    vocabs = [int(v.replace("_", "")) for v in args.vocab.split(",") if v.strip()]
    frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    for f in frameworks:
        if f not in known:
            sys.exit(f"--frameworks: unknown '{f}', choose from {', '.join(known)}")
    return vocabs, frameworks


def library_versions() -> dict[str, str]:
    import torch
    import transformers

    versions = {"torch": torch.__version__, "transformers": transformers.__version__}
    try:
        import trl
        versions["trl"] = trl.__version__
    except ImportError:
        pass
    return versions


def print_versions(versions: dict[str, str]) -> None:
    import torch

    print(f"# {', '.join(f'{k} {v}' for k, v in versions.items())}; torch threads: {torch.get_num_threads()} "
          f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})")
    sys.stdout.flush()


def measure(args, vocabs: list[int], frameworks: list[str], script: str, summarise_fn) -> tuple[list, float, float]:
    """Every (framework, vocab) child in turn between two matmul-rate measurements; each result
    gains summarise_fn's numbers (MFU against the higher rate). Returns (results, before, after)."""
    import torch

    before = matmul_gflops(args.matmul_size, args.matmul_seconds)
    results = []
    for vocab in vocabs:
        for framework in frameworks:
            spec = f"{framework}:{vocab}"
            print(f"# running {spec} ...", file=sys.stderr, flush=True)
            r = spawn(spec, args, script)
            if r is not None:
                results.append(r)
    after = matmul_gflops(args.matmul_size, args.matmul_seconds)
    peak = max(before, after)
    print(f"# matmul {args.matmul_size}x{args.matmul_size} fp32: {before:.1f} GFLOP/s before the runs, "
          f"{after:.1f} after; MFU uses the higher, {peak:.1f}")
    for r in results:
        r.update(summarise_fn(r, peak))
        if r["threads"] != torch.get_num_threads():
            print(f"# warning: {r['framework']}:{r['vocab']} ran with {r['threads']} threads, "
                  f"the matmul with {torch.get_num_threads()}")
    return results, before, after


def finish(args, versions: dict, matmul: tuple[float, float], results: list, expected: int) -> int:
    """Write --json if asked; exit status 1 when a child failed."""
    if args.json:
        Path(args.json).write_text(json.dumps({"versions": versions, "matmul_gflops": list(matmul),
                                               "args": vars(args), "results": results}, indent=1))
    return 0 if len(results) == expected else 1


def parent(args) -> int:
    vocabs, frameworks = selected(args, FRAMEWORKS)
    versions = library_versions()
    print(f"# SFT step benchmark: batch {BATCH} x {SEQ_LEN} tokens, {args.warmup} warm-up + "
          f"{args.steps} timed steps, posttrain logprob_chunk_size={args.chunk_size}")
    print_versions(versions)
    results, before, after = measure(args, vocabs, frameworks, __file__, summarise)
    print()
    print("| framework | vocab | s/step | tokens/s | peak MiB | train MiB | MFU |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['framework']} | {r['vocab']:,} | {r['s_per_step']:.3f} | {r['tokens_per_s']:,.0f} | "
              f"{r['peak_mib']:,.0f} | {r['train_mib']:,.0f} | {100 * r['mfu']:.1f}% |")
    print()
    by = {(r["framework"], r["vocab"]): r for r in results}
    for vocab in vocabs:
        p, t = by.get(("posttrain", vocab)), by.get(("trl", vocab))
        if p and t:
            print(f"posttrain/TRL tokens/s at V={vocab:,}: {p['tokens_per_s'] / t['tokens_per_s']:.2f}")
            print(f"peak memory posttrain/TRL at V={vocab:,}: {p['peak_kib'] / t['peak_kib']:.2f} "
                  f"(train MiB: {p['train_mib'] / t['train_mib']:.2f})")
    print()
    print("# s/step: mean over the timed steps (warm-up excluded); tokens/s = "
          f"{BATCH * SEQ_LEN} tokens per step / s/step")
    print("# peak MiB: the child process's VmHWM right after its last step (total, imports included); "
          "train MiB: that minus its RSS after imports + tokenizer + data + model")
    print("# MFU: (6 N T + 12 L H S T) per step / s/step / matmul rate; N = non-embedding params + LM head")
    for r in results:
        print(f"# {r['framework']}:{r['vocab']}: steps {', '.join(f'{x:.3f}' for x in r['step_times'])} s; "
              f"N = {r['flop_params']:,} ({r['params']:,} in all); {r['flops_per_step'] / 1e9:.1f} GFLOP/step; "
              f"optimizer {r['optimizer']}")
    return finish(args, versions, (before, after), results, len(vocabs) * len(frameworks))


def main(doc: str = __doc__, frameworks_default: str = "posttrain,trl", run=None, report=None) -> int:
    """The command line both benchmarks share: --one runs a child, anything else the parent."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=10, help="timed optimizer steps (default 10)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed warm-up steps first (default 2)")
    ap.add_argument("--vocab", default="8192,128256", help="comma-separated vocabulary sizes")
    ap.add_argument("--frameworks", default=frameworks_default, help=f"comma-separated: {frameworks_default}")
    ap.add_argument("--chunk-size", type=int, default=256, help="posttrain's train.logprob_chunk_size")
    ap.add_argument("--matmul-size", type=int, default=2048, help="square fp32 matmul for the MFU rate")
    ap.add_argument("--matmul-seconds", type=float, default=1.0)
    ap.add_argument("--json", help="also write every number (and per-step times) to this file")
    ap.add_argument("--verbose", action="store_true", help="show the children's output")
    ap.add_argument("--one", metavar="FRAMEWORK:VOCAB", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.steps < 1 or args.warmup < 0:
        ap.error("--steps must be >= 1 and --warmup >= 0")
    if args.one:
        result = (run or run_one)(args.one, args)
        Path(args.result).write_text(json.dumps(result))
        return 0
    return (report or parent)(args)


if __name__ == "__main__":
    sys.exit(main())
