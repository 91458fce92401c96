"""What every bench/*_vs_trl.py script shares: the tiny Llama at a given vocabulary, pre-tokenised
random data, one configuration per fresh child process (the two frameworks' runners are in
runners.py), the measurements (s/step, tokens/s, peak and training memory, matmul rate, MFU) and the
printed table and ratio lines.

A script defines `prepare(framework, vocab, args, tmp) -> setup dict` (model, data, FLOPs; what
runs before the memory baseline) and `run(framework, setup, args, out_dir) -> result dict`, and
calls `main(__doc__, frameworks, child_fn, parent_fn)`. See bench/README.md for what each number
means. Only the standard library is imported here at module level (the parent stays light).
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
DATA_SEED = 1234
MODEL_KW = dict(
    hidden_size=256,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=688,
    max_position_embeddings=512,
    tie_word_embeddings=False,
)
LLAMA3_VOCAB = 128_256


# ---- memory: the kernel's own high-water mark of this process's resident set ----------------


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


# ---- the shared setup: model, tokenizer, data ---------------------------------------------


def build_model(vocab: int, seed: int = 0, classifier: bool = False, pad_id: int = 0):
    """The tiny Llama (fp32, sdpa) after torch.manual_seed(seed); with classifier=True a
    LlamaForSequenceClassification with one output (a reward model), pad_token_id = pad_id."""
    import torch
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        LlamaForSequenceClassification,
    )

    torch.manual_seed(seed)
    extra = dict(num_labels=1, pad_token_id=pad_id) if classifier else {}
    config = LlamaConfig(vocab_size=vocab, attn_implementation="sdpa", **MODEL_KW, **extra)
    model = (LlamaForSequenceClassification if classifier else LlamaForCausalLM)(config).float()
    assert model.config._attn_implementation == "sdpa", model.config._attn_implementation
    return model


def build_tokenizer(vocab: int):
    """The real Llama-3 tokenizer at 128,256; at other sizes a word-level tokenizer with exactly
    `vocab` entries (`<pad>` 0, `<eos>` 1, `<unk>` 2, then `t3`..), split on white space, so the
    text "t5 t9" is the ids [5, 9] and back. Only the GRPO bench encodes text; the others hand
    over ids."""
    from posttrain.model.llama3_tokenizer import llama3_tokenizer

    if vocab == LLAMA3_VOCAB:
        tok = llama3_tokenizer()
        assert len(tok) == vocab, len(tok)
        return tok
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>", "<unk>"]
    table = {name: i for i, name in enumerate(specials)}
    table.update({f"t{i}": i for i in range(len(specials), vocab)})
    backend = Tokenizer(models.WordLevel(vocab=table, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    assert len(tok) == vocab and tok.pad_token_id == 0, (len(tok), tok.pad_token_id)
    return tok


def random_ids(vocab: int, shape: tuple[int, ...], seed: int = DATA_SEED, low: int = 0) -> list:
    """Token ids in [low, vocab) of the given shape, from a fixed seed, as nested lists."""
    import torch

    return torch.randint(low, vocab, shape, generator=torch.Generator().manual_seed(seed)).tolist()


def param_counts(model) -> dict[str, int]:
    """params, head_params (the untied LM head; 0 for a classifier, whose 256-weight score head
    counts in the body) and body_params (the rest without the input embedding)."""
    n = sum(p.numel() for p in model.parameters())
    embed = model.get_input_embeddings().weight.numel()
    head = model.get_output_embeddings()
    n_head = head.weight.numel() if head is not None else 0
    return {"params": n, "head_params": n_head, "body_params": n - embed - n_head}


def model_flops(
    body_params: int, head_params: int, tokens: int, scored: int, seq_len: int, cfg: dict = MODEL_KW
) -> float:
    """Training FLOPs of one step, PaLM / Chinchilla's 6 N T + 12 L H S T, with the LM head
    counted only at the `scored` positions that carry a loss (posttrain and TRL both apply it
    nowhere else): 6 (N_body T + N_head T_scored) + 12 L H S T. With every position scored
    this is 6 N T + 12 L H S T with N = N_body + N_head."""
    attention = 12 * cfg["num_hidden_layers"] * cfg["hidden_size"] * seq_len * tokens
    return 6 * (body_params * tokens + head_params * scored) + attention


def mfu(flops_per_step: float, s_per_step: float, matmul_gflops_rate: float) -> float:
    """Model FLOPs per second over the measured matmul rate (a share, 0.5 = 50%)."""
    return flops_per_step / s_per_step / 1e9 / matmul_gflops_rate


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


# ---- one configuration, in its own process ---------------------------------------------------


def child(spec: str, args, prepare, run, trl_modules: tuple[str, ...] = ()) -> dict:
    """Imports (before the memory baseline, so they count in the peak but not in training
    memory), prepare(), the baseline, run(); the numbers the parent needs."""
    framework, vocab = spec.split(":")
    vocab = int(vocab)
    import importlib

    import torch

    modules = (
        ("accelerate", "posttrain.train.loop")
        if framework.startswith("posttrain")
        else ("datasets", "trl", *trl_modules)
    )
    for name in modules:
        importlib.import_module(name)
    with tempfile.TemporaryDirectory(prefix=f"bench-{framework}-{vocab}-") as tmp:
        setup = prepare(framework, vocab, args, Path(tmp))
        gc.collect()
        baseline = proc_status_kib()
        result = run(framework, setup, args, Path(tmp) / "run")
    end = proc_status_kib()
    counts = {
        k: setup[k]
        for k in (
            "flops_per_step",
            "tokens_per_step",
            "units_per_step",
            "params",
            "body_params",
            "head_params",
            "save_hwm_kib",
        )
        if k in setup
    }
    return {
        "framework": framework,
        "vocab": vocab,
        "threads": torch.get_num_threads(),
        "baseline_rss_kib": baseline["VmRSS"],
        "baseline_hwm_kib": baseline["VmHWM"],
        "peak_kib": result.pop("hwm_kib") or end["VmHWM"],
        "end_hwm_kib": end["VmHWM"],
        **counts,
        **result,
    }


def spawn(spec: str, args, script: str) -> dict | None:
    """Run one configuration of `script` in a fresh process (its own memory high-water mark)."""
    with tempfile.TemporaryDirectory(prefix="bench-result-") as tmp:
        result_path = Path(tmp) / "result.json"
        cmd = [
            sys.executable,
            os.path.abspath(script),
            "--one",
            spec,
            "--result",
            str(result_path),
            "--steps",
            str(args.steps),
            "--warmup",
            str(args.warmup),
            "--chunk-size",
            str(args.chunk_size),
        ]
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
        started = time.perf_counter()
        out = None if args.verbose else subprocess.PIPE
        proc = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT if out else None, text=True)
        if proc.returncode != 0 or not result_path.exists():
            print(
                f"[{spec}] FAILED (exit {proc.returncode}); last output:\n{(proc.stdout or '')[-4000:]}",
                file=sys.stderr,
            )
            return None
        result = json.loads(result_path.read_text())
        result["process_wall_s"] = time.perf_counter() - started
        return result


# ---- the parent: measure, summarise, print ---------------------------------------------------


def summarise(r: dict, peak_gflops: float) -> dict:
    times = r["step_times"]
    s = sum(times) / len(times)
    out = {
        "s_per_step": s,
        "s_per_step_min": min(times),
        "s_per_step_max": max(times),
        "s_per_step_median": statistics.median(times),
        "steps_per_s": 1 / s,
        "peak_mib": r["peak_kib"] / 1024,
        "train_mib": (r["peak_kib"] - r["baseline_rss_kib"]) / 1024,
    }
    if r.get("tokens_per_step"):
        out["tokens_per_s"] = r["tokens_per_step"] / s
    if r.get("units_per_step"):
        out["units_per_s"] = r["units_per_step"] / s
    if r.get("flops_per_step"):
        out["achieved_gflops"] = r["flops_per_step"] / s / 1e9
        out["mfu"] = mfu(r["flops_per_step"], s, peak_gflops)
    return out


def selected(args, known: tuple[str, ...]) -> tuple[list[int], list[str]]:
    """(vocabulary sizes, frameworks) from --vocab and --frameworks; an unknown framework exits."""
    vocabs = [int(v.replace("_", "")) for v in args.vocab.split(",") if v.strip()]
    frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    for f in frameworks:
        if f not in known:
            sys.exit(f"--frameworks: unknown '{f}', choose from {', '.join(known)}")
    return vocabs, frameworks


def header(args, title: str) -> dict[str, str]:
    """Print the title, library versions, thread count and load average; return the versions."""
    import torch
    import transformers

    versions = {"torch": torch.__version__, "transformers": transformers.__version__}
    try:
        import trl

        versions["trl"] = trl.__version__
    except ImportError:
        pass
    print(
        f"# {title}; {args.warmup} warm-up + {args.steps} timed steps, posttrain logprob_chunk_size={args.chunk_size}"
    )
    load = os.getloadavg() if hasattr(os, "getloadavg") else ()
    print(
        f"# {', '.join(f'{k} {v}' for k, v in versions.items())}; torch threads: {torch.get_num_threads()} "
        f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}); load average at start "
        f"{' '.join(f'{x:.1f}' for x in load)} on {os.cpu_count()} CPUs"
    )
    sys.stdout.flush()
    return versions


def measure(args, vocabs: list[int], frameworks: list[str], script: str) -> tuple[list, float, float]:
    """Every (framework, vocab) child in turn between two matmul-rate measurements; each result
    gains summarise's numbers (MFU against the higher rate). Returns (results, before, after)."""
    import torch

    before = matmul_gflops(args.matmul_size, args.matmul_seconds)
    results = []
    for vocab in vocabs:
        for framework in frameworks:
            print(f"# running {framework}:{vocab} ...", file=sys.stderr, flush=True)
            r = spawn(f"{framework}:{vocab}", args, script)
            if r is not None:
                results.append(r)
    after = matmul_gflops(args.matmul_size, args.matmul_seconds)
    peak = max(before, after)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(
        f"# matmul {args.matmul_size}x{args.matmul_size} fp32: {before:.1f} GFLOP/s before the runs, "
        f"{after:.1f} after; MFU uses the higher, {peak:.1f}; load average at the end {load}"
    )
    for r in results:
        r.update(summarise(r, peak))
        if r["threads"] != torch.get_num_threads():
            print(
                f"# warning: {r['framework']}:{r['vocab']} ran with {r['threads']} threads, "
                f"the matmul with {torch.get_num_threads()}"
            )
    return results, before, after


COLUMNS = {  # header: (result key, format)
    "s/step": ("s_per_step", "{:.3f}"),
    "tokens/s": ("tokens_per_s", "{:,.0f}"),
    "peak MiB": ("peak_mib", "{:,.0f}"),
    "train MiB": ("train_mib", "{:,.0f}"),
    "MFU": ("mfu", "{:.1%}"),
    "first loss": ("first_loss", "{:.5f}"),
}


def print_table(results: list[dict], columns: list[str], extra: dict | None = None) -> None:
    """A Markdown table: framework, vocab, then `columns` (COLUMNS names or `extra`'s, which map
    a header to a function of the result)."""
    extra = extra or {}
    print()
    print("| framework | vocab | " + " | ".join(columns) + " |")
    print("|---|---:|" + "---:|" * len(columns))
    for r in results:
        cells = []
        for name in columns:
            if name in extra:
                cells.append(extra[name](r))
            else:
                key, fmt = COLUMNS[name]
                cells.append("—" if r.get(key) is None else fmt.format(r[key]))
        print(f"| {r['framework']} | {r['vocab']:,} | " + " | ".join(cells) + " |")
    print()


def print_ratios(results: list[dict], vocabs: list[int], ours: str, peers: dict[str, str]) -> None:
    """posttrain/peer steps per second and peak (training) memory at each vocabulary."""
    by = {(r["framework"], r["vocab"]): r for r in results}
    for vocab in vocabs:
        p = by.get((ours, vocab))
        for peer, label in peers.items():
            t = by.get((peer, vocab))
            if p and t:
                print(f"posttrain/{label} steps per second at V={vocab:,}: {p['steps_per_s'] / t['steps_per_s']:.2f}")
                print(
                    f"peak memory posttrain/{label} at V={vocab:,}: {p['peak_kib'] / t['peak_kib']:.2f} "
                    f"(train MiB: {p['train_mib'] / t['train_mib']:.2f})"
                )


def print_loss_agreement(results: list[dict], vocabs: list[int], ours: str, peers: list[str]) -> None:
    """|posttrain - peer| of the loss before training on the same rows (same objective: ~1e-6)."""
    by = {(r["framework"], r["vocab"]): r for r in results}
    for vocab in vocabs:
        for peer in peers:
            p, t = by.get((ours, vocab)), by.get((peer, vocab))
            if p and t and p.get("first_loss") is not None and t.get("first_loss") is not None:
                print(
                    f"first loss {ours} vs {peer} at V={vocab:,}: {p['first_loss']:.6f} vs "
                    f"{t['first_loss']:.6f}, max |diff| {abs(p['first_loss'] - t['first_loss']):.1e}"
                )


def precompute_cell(r: dict) -> str:
    """The "ref precompute s" cell: the precompute's seconds, or that the reference runs every step."""
    return "— (ref model every step)" if r.get("precompute_s") is None else f"{r['precompute_s']:.2f}"


def max_abs_diff(a, b) -> float:
    """Largest |a - b| over two equal-shaped nested lists of numbers (or two numbers)."""
    if isinstance(a, (int, float)):
        return abs(a - b)
    return max(max_abs_diff(x, y) for x, y in zip(a, b, strict=True))


def print_step_lines(results: list[dict]) -> None:
    for r in results:
        flops = f"{r['flops_per_step'] / 1e9:.1f} GFLOP/step; " if r.get("flops_per_step") else ""
        print(
            f"# {r['framework']}:{r['vocab']}: steps {', '.join(f'{x:.3f}' for x in r['step_times'])} s; "
            f"{flops}optimizer {r.get('optimizer', '?')}"
        )


def finish(args, versions: dict, matmul: tuple[float, float], results: list, expected: int) -> int:
    """Write --json if asked; exit status 1 when a child failed."""
    if args.json:
        for r in results:
            r.pop("metrics", None)
        Path(args.json).write_text(
            json.dumps(
                {"versions": versions, "matmul_gflops": list(matmul), "args": vars(args), "results": results}, indent=1
            )
        )
    return 0 if len(results) == expected else 1


def report(
    args,
    script: str,
    title: str,
    known: tuple[str, ...],
    columns: list[str],
    *,
    extra=None,
    peers: dict[str, str] | None = None,
    loss_peers: tuple[str, ...] = ("trl",),
    notes: tuple[str, ...] = (),
    more=None,
) -> int:
    """The parent of every bench: run the selected configurations, print the table, the
    posttrain/peer ratios, the first-loss agreement, `more(results, vocabs)`, the notes (one
    "# " line each) and the per-step lines; --json; exit status 1 when a child failed."""
    vocabs, frameworks = selected(args, known)
    versions = header(args, title)
    results, before, after = measure(args, vocabs, frameworks, script)
    print_table(results, columns, extra)
    print_ratios(results, vocabs, "posttrain", peers if peers is not None else {"trl": "TRL"})
    print_loss_agreement(results, vocabs, "posttrain", list(loss_peers))
    if more is not None:
        more(results, vocabs)
    for note in notes:
        print(f"# {note}")
    print_step_lines(results)
    return finish(args, versions, (before, after), results, len(vocabs) * len(frameworks))


def main(doc: str, frameworks_default: str, run_one, parent) -> int:
    """The command line every bench shares: --one runs a child, anything else the parent."""
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
        result = run_one(args.one, args)
        result.pop("metrics", None)
        Path(args.result).write_text(json.dumps(result))
        return 0
    return parent(args)
