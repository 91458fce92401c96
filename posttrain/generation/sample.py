"""`posttrain sample`: N completions per prompt from a model, as a resumable job.

    posttrain sample MODEL --prompts FILE --n N --out OUT.jsonl [--temperature T] [--top-p P]
        [--max-new-tokens M] [--stop S] [--seed S] [--backend hf|vllm|openai] [--batch-size B]
        [--shard I/K] [--set KEY=VALUE]

Prompt rows are read as `posttrain eval` and grpo read them (`prompt`: a string or messages, or
`messages`; a reference under reference/answer/solution); every other column is kept. hf and
vllm render the prompt with the model's chat template (plain text for a base model), openai sends
the messages and the server applies its own. Each output row is the input row plus
    completions  [{text, finish_reason, num_tokens, logprob}] (N of them; logprob: the sum of the
                 model's log-probs of the completion's tokens at temperature 1, when the backend
                 gives it), and model, backend, sampling (the settings), seed, row (the input row number).
The batch b of a job is sampled with seed + b, so a rerun after a crash samples what the lost
batch would have sampled (hf; openai servers differ in how they honour seeds).
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, fields
from pathlib import Path

import yaml

from posttrain.errors import UserError
from posttrain.generation.factory import add_backend_arguments, make_generation_backend
from posttrain.generation.source import SamplingSettings


def add_sample_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "sample",
        help="N completions per prompt, written as a resumable job",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="model dir, hub id or 'tiny' (hf, vllm); the served model's name (openai)")
    p.add_argument("--prompts", required=True, help="prompt file (.jsonl, .json, .parquet, .csv) or dataset dir")
    p.add_argument("--out", required=True, help="output .jsonl (its manifest goes beside it)")
    p.add_argument("--n", type=int, default=1, help="completions per prompt")
    p.add_argument("--temperature", type=float, default=1.0, help="0 = greedy")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--stop", action="append", default=[], help="a stop string (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--no-logprobs", action="store_true", help="skip the completions' log-probs (hf: one scoring pass less)"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"a sampling setting by name ({', '.join(f.name for f in fields(SamplingSettings))})",
    )
    add_job_arguments(p)
    add_backend_arguments(p)


def add_job_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-size", type=int, default=16, help="prompts per chunk (and hf generation batch)")
    p.add_argument("--shard", help="I/K: do only block I (0-based) of K of the rows; join with `posttrain data concat`")
    p.add_argument(
        "--on-error", choices=["fail", "skip"], default="fail", help="invalid input rows: stop, or skip and count them"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def settings_from_args(args: argparse.Namespace) -> SamplingSettings:
    settings = SamplingSettings(
        args.n, args.temperature, args.top_p, args.max_new_tokens, list(args.stop), args.seed, not args.no_logprobs
    )
    names = {f.name for f in fields(SamplingSettings)}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep or key not in names:
            raise UserError(f"--set {item!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(names))}")
        setattr(settings, key, yaml.safe_load(value))
    settings.check()
    return settings


def load_prompt_items(path: str, on_error: str) -> tuple[list[dict], int]:
    """({row, fields, messages, reference} per valid row, number of invalid rows skipped)."""
    from posttrain.data.sources import load_records, validated_rows

    loaded = load_records(path, "prompt", on_error)
    raw = dict(validated_rows(path, on_error=on_error))
    items = [
        {"row": number, "fields": raw[number], "messages": record.prompt, "reference": record.reference}
        for number, record in zip(loaded.rows, loaded.records)
    ]
    return items, loaded.skipped


def input_identity(path: str, rows: int) -> dict:
    from posttrain.data.jobs import file_sha256

    if Path(path).is_dir():
        return {
            "path": str(path),
            "rows": rows,
            "sha256": {p.name: file_sha256(p) for p in sorted(Path(path).rglob("*")) if p.is_file()},
        }
    return {"path": str(path), "rows": rows, "sha256": file_sha256(path)}


class Sampler:
    """process_batch for the job runner: N completions for each prompt of a batch."""

    def __init__(self, backend, backend_name: str, model: str, settings: SamplingSettings):
        self.backend, self.backend_name, self.model, self.settings = backend, backend_name, model, settings
        self.prompter = None
        if getattr(backend, "tokenizer", None) is not None:
            from posttrain.generation.prompter import Prompter

            self.prompter = Prompter(backend.tokenizer, backend.is_chat)

    def requests(self, item: dict):
        from posttrain.generation.backend import GenerationRequest

        s = self.settings
        ids = self.prompter.encode(item["messages"]) if self.prompter else []
        request = GenerationRequest(
            ids,
            s.max_new_tokens,
            tuple(s.stop),
            s.temperature,
            s.top_p,
            messages=tuple(item["messages"]),
            text=item.get("text"),
        )
        return [request] * s.n

    def __call__(self, batch: list[dict], index: int):
        from posttrain.data.jobs import BatchOutput
        from posttrain.generation.backend import RequestFailed

        s, seed = self.settings, self.settings.seed + index
        requests = [r for item in batch for r in self.requests(item)]
        results = self.backend.complete(requests, seed=seed, logprobs=s.logprobs)
        rows, failures = [], []
        for k, item in enumerate(batch):
            mine = results[k * s.n : (k + 1) * s.n]
            failed = [r.error for r in mine if isinstance(r, RequestFailed)]
            if failed:
                failures.append({"row": item["row"], "error": failed[0], "failed_completions": len(failed)})
                continue
            rows.append(
                {
                    **item["fields"],
                    "prompt": item["fields"].get("prompt", item["messages"]),
                    "completions": [
                        {
                            "text": c.text,
                            "finish_reason": c.finish_reason,
                            "num_tokens": c.num_tokens,
                            "logprob": c.logprob,
                        }
                        for c in mine
                    ],
                    "model": self.model,
                    "backend": self.backend_name,
                    "sampling": self.identity(),
                    "seed": seed,
                    "row": item["row"],
                }
            )
        return BatchOutput(rows, failures)

    def identity(self) -> dict:
        return {k: v for k, v in asdict(self.settings).items() if k != "seed"}


def sample_command(args: argparse.Namespace) -> int:
    from posttrain.data.jobs import JobSpec, Shard, run_job

    settings = settings_from_args(args)
    shard = Shard.parse(args.shard)  # a typo fails before the model loads
    items, skipped = load_prompt_items(args.prompts, args.on_error)
    backend = make_generation_backend(args)
    sampler = Sampler(backend, args.backend, args.model, settings)
    identity = {
        "command": "sample",
        "inputs": [input_identity(args.prompts, len(items) + skipped)],
        "model": args.model,
        "backend": args.backend,
        "sampling": sampler.identity(),
        "seed": settings.seed,
    }
    if args.backend == "openai":
        from posttrain.generation.openai_args import server_identity, with_prompt_texts

        identity["server"] = server_identity(backend, args)
        items = with_prompt_texts(items, backend, args.prompts)
    spec = JobSpec(
        Path(args.out),
        args.batch_size,
        identity,
        shard,
        desc="sample",
        extra_counts={"invalid_rows_skipped": skipped},
        show_progress=not args.quiet,
    )
    manifest = run_job(items, sampler, spec)
    if settings.logprobs:
        from posttrain.generation.openai_args import note_missing_logprobs

        manifest = note_missing_logprobs(Path(args.out), manifest)
    return report(manifest, args.out)


def report(manifest: dict, out: str) -> int:
    """One summary line; exit status 1 when rows failed (their reasons are in the manifest)."""
    from posttrain.data.jobs import manifest_path

    counts = manifest["counts"]
    print(f"wrote {counts['rows_out']} rows to {out} (manifest: {manifest_path(Path(out))})")
    for warning in manifest.get("warnings", []):
        print(f"posttrain: warning: {warning}")
    if counts["failed"]:
        print(
            f"posttrain: {counts['failed']} of {counts['items']} rows failed (reasons in the manifest); "
            "rerun the same command to retry them"
        )
        return 1
    return 0
