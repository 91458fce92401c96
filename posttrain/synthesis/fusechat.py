"""FuseChat-3.0 multi-source sampling (Yang et al. 2024, "FuseChat-3.0: Preference Optimization Meets
Heterogeneous Model Fusion"): several source models answer every prompt; a reward model or verifier
then scores the answers, SFT takes the best and DPO pairs best vs worst drawn from ONE source
(scoring and pairing are `posttrain score ... --pairs per-source`). This step is the sampling: one
file with a row per (prompt, source), in `posttrain sample`'s shape plus a `source` column:
    {...the prompt row..., prompt, completions: [{text, finish_reason, num_tokens, logprob}],
     model, backend, sampling, seed, row, source}

    posttrain synth fusechat recipe.yaml --out samples.jsonl
    posttrain score --data samples.jsonl --scorer math --pairs per-source --out scored.jsonl

recipe.yaml:
    prompts: prompts.jsonl
    n: 4
    sources:
      - {name: big, model: runs/big/final}
      - {name: api, model: served-name, backend: openai, base_url: http://127.0.0.1:8000/v1}

Each source is its own resumable job (OUT.sources/NAME.jsonl, run_job: kill -9 and rerun gives
every row once; models are loaded one at a time); the joined file is written last, prompt-major
(all sources of prompt 1, then prompt 2, ...). No prompt wording is added: the prompt rows are
sent as they are (through each model's own chat template).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import field_validator

from posttrain.config.base import Positive, Section
from posttrain.errors import UserError
from posttrain.generation.source import ModelSource, Sampling

NAME = "fusechat"
HELP = "FuseChat-3.0: several source models sample each prompt into one file with a `source` column"


class Source(ModelSource):
    name: str  # the `source` value of its rows


class Recipe(Section):
    prompts: str = ""  # prompt rows as `posttrain sample` reads them
    out: str = ""
    sources: list[Source] = []
    n: Positive = 1  # completions per prompt and source
    sampling: Sampling = Sampling()
    batch_size: Positive = 16
    seed: int = 0

    @field_validator("sources")
    @classmethod
    def _distinct_names(cls, sources: list[Source]) -> list[Source]:
        names = [s.name for s in sources]
        if len(set(names)) != len(names) or any(not n or "/" in n for n in names):
            raise ValueError(f"source names must be distinct, non-empty and without '/', got {names}")
        return sources


def source_job(recipe: Recipe, source: Source, items: list[dict], skipped: int, out: Path) -> dict:
    """Sample every prompt with one source into out.sources/NAME.jsonl (a resumable job)."""
    from posttrain.data.jobs import BatchOutput, JobSpec, run_job
    from posttrain.generation.factory import open_backend
    from posttrain.generation.sample import Sampler, input_identity
    from posttrain.generation.source import SamplingSettings

    where = f"synth fusechat: source '{source.name}'"
    backend = open_backend(source, recipe.batch_size, recipe.seed, where)
    s = recipe.sampling
    settings = SamplingSettings(
        recipe.n, s.temperature, s.top_p, s.max_new_tokens, [], recipe.seed, logprobs=source.backend != "openai"
    )
    sampler = Sampler(backend, source.backend, source.model, settings)

    def with_source(batch: list[dict], index: int) -> BatchOutput:
        result = sampler(batch, index)
        return BatchOutput([{**row, "source": source.name} for row in result.rows], result.failures)

    identity = {
        "command": "synth fusechat",
        "inputs": [input_identity(recipe.prompts, len(items) + skipped)],
        "source": {"name": source.name, **source.identity()},
        "sampling": sampler.identity(),
        "seed": recipe.seed,
    }
    path = out.with_name(out.name + ".sources") / f"{source.name}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    return run_job(items, with_source, JobSpec(path, recipe.batch_size, identity, desc=source.name))


def join_sources(paths: list[Path], out: Path) -> int:
    """Rows of all sources, grouped by prompt row (stable: sources in recipe order)."""
    from posttrain.data.jobs import write_atomically

    rows = [json.loads(line) for path in paths for line in path.read_text(encoding="utf-8").splitlines()]
    rows.sort(key=lambda r: r["row"])
    write_atomically(out, "".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


def run(recipe: Recipe) -> int:
    from posttrain.data.jobs import manifest_path, write_atomically
    from posttrain.generation.sample import load_prompt_items

    if not recipe.out:
        raise UserError("synth fusechat: no output path (--out PATH or out=PATH)")
    if len(recipe.sources) < 2:
        raise UserError(
            f"synth fusechat: needs at least two sources (list of {{name, model, ...}}), got {len(recipe.sources)}"
        )
    if not recipe.prompts or not Path(recipe.prompts).exists():
        raise UserError(f"{recipe.prompts or 'prompts'}: prompt file not found (set prompts=FILE)")
    items, skipped = load_prompt_items(recipe.prompts, "fail")
    if not items:
        raise UserError(f"{recipe.prompts}: no prompt rows")
    out = Path(recipe.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    manifests = {s.name: source_job(recipe, s, items, skipped, out) for s in recipe.sources}
    failed = {name: m["counts"]["failed"] for name, m in manifests.items() if m["counts"]["failed"]}
    if failed:
        print(
            f"posttrain: prompts failed per source {failed} (reasons in {out.name}.sources/*.manifest.json); "
            "rerun the same command to retry them"
        )
        return 1
    total = join_sources([Path(m["output"]) for m in manifests.values()], out)
    write_atomically(
        manifest_path(out),
        json.dumps(
            {
                "command": "synth fusechat",
                "output": str(out),
                "prompts": recipe.prompts,
                "sources": {
                    name: {"output": m["output"], "model": m["source"], "counts": m["counts"]}
                    for name, m in manifests.items()
                },
                "counts": {"prompts": len(items), "rows_out": total},
            },
            indent=2,
        )
        + "\n",
    )
    print(f"wrote {total} rows ({len(items)} prompts x {len(manifests)} sources) to {out}")
    return 0
