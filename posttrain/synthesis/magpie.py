"""Magpie (Xu et al. 2024, "Magpie: Alignment Data Synthesis from Scratch by Prompting Aligned LLMs
with Nothing"): an aligned model given only its chat template's pre-query prefix -- everything the
template writes before a user message's text, e.g. for Llama-3
    <|begin_of_text|><|start_header_id|>user<|end_header_id|>\\n\\n
-- writes a user query (sampled, stopped at its end of turn); the query is then answered with the
full template. No prompt wording of ours is involved: the prefix is the template's own.

    posttrain synth magpie --set source.model=runs/tiny-sft/final --set n_rows=2000 --out data/magpie.jsonl

The prefix is derived from any tokenizer's template (pre_query_text): the template renders a
conversation whose next user message is a sentinel, and the rendering is cut right before it.
turns > 1 (multi-turn Magpie) samples the next query after the conversation so far plus the same
cut, then answers it. The paper's filters (filters.py: incomplete, length, repetition, refusal,
language, dedup) run on the generated rows. Files:
    OUT.raw.jsonl (+ .raw.manifest.json)  every generated conversation, with each turn's
                                          finish_reason: a resumable job (run_job), so kill -9 and
                                          rerun gives every row once; changing only the filters
                                          refilters it without sampling again
    OUT ({"messages": [...]}, what `posttrain sft` reads) and OUT's manifest.json: counts per filter
A run whose filters remove every row exits 2 naming what each filter removed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from posttrain.config.base import NonNegative, NonNegFloat, Positive, Ratio, Section
from posttrain.errors import UserError
from posttrain.generation.factory import chat_tokenizer, open_backend
from posttrain.generation.source import ModelSource, Sampling

NAME = "magpie"
HELP = "Magpie: user queries sampled from an aligned model's pre-query template, answered, filtered"

SENTINEL = "MAGPIEQUERYSENTINEL"  # plain letters: survives templates that trim or escape content


class QuerySampling(Sampling):
    max_new_tokens: Positive = 128  # the paper: T=1, top_p=1 for the queries


class ResponseSampling(Sampling):
    temperature: NonNegFloat = 0.0  # the paper: greedy answers
    max_new_tokens: Positive = 256


class MagpieFilters(Section):
    min_query_words: NonNegative = 1
    max_query_words: Positive = 512
    min_response_words: NonNegative = 1
    max_response_words: Positive = 4096
    max_repetition: Ratio = 0.5  # share of repeated word 3-grams in any turn
    languages: list[str] | None = ["en"]  # py3langid codes of the user turns; null: any
    skip: list[Literal["incomplete", "length", "repetition", "refusal", "language", "dedup"]] = []

    def settings(self) -> dict:
        return {
            "bounds": {
                "user": (self.min_query_words, self.max_query_words),
                "assistant": (self.min_response_words, self.max_response_words),
            },
            "max_repetition": self.max_repetition,
            "languages": self.languages,
            "skip": list(self.skip),
        }


class Recipe(Section):
    out: str = ""  # output .jsonl
    source: ModelSource = ModelSource()  # the aligned model (openai: endpoint completions)
    n_rows: Positive = 100  # conversations generated (before filtering)
    turns: Annotated[int, Field(ge=1, le=16)] = 1
    system: str | None = None  # a system message before the pre-query prefix (the paper: none)
    query: QuerySampling = QuerySampling()
    response: ResponseSampling = ResponseSampling()
    filters: MagpieFilters = MagpieFilters()
    batch_size: Positive = 16
    seed: int = 0


def pre_query_text(tokenizer, conversation: list[dict] = ()) -> str:
    """The template's rendering of `conversation` plus a user message, cut right before that
    message's text: what the model sees just before a user writes."""
    rendered = tokenizer.apply_chat_template([*conversation, {"role": "user", "content": SENTINEL}], tokenize=False)
    cut = rendered.find(SENTINEL)
    if cut < 0:
        raise UserError(
            "the chat template does not render a user message's text verbatim, so its "
            "pre-query prefix cannot be cut out"
        )
    return rendered[:cut]


def pre_query_ids(tokenizer, conversation: list[dict] = ()) -> list[int]:
    """pre_query_text as token ids, with exactly one BOS (as data/chat.render_ids does)."""
    ids = list(tokenizer(pre_query_text(tokenizer, conversation), add_special_tokens=False)["input_ids"])
    bos = tokenizer.bos_token_id
    return ids if bos is None or (ids and ids[0] == bos) else [bos, *ids]


class MagpieBatch:
    """process_batch for run_job: each item (a row number) becomes one conversation of `turns` turns."""

    def __init__(self, backend, recipe: Recipe):
        self.backend, self.recipe = backend, recipe
        self.tokenizer = chat_tokenizer(backend, "synth magpie: source")

    def __call__(self, batch: list[int], index: int):
        from posttrain.data.jobs import BatchOutput

        start = [{"role": "system", "content": self.recipe.system}] if self.recipe.system else []
        convs = {item: {"item": item, "messages": list(start), "turns": []} for item in batch}
        failures: list[dict] = []
        for turn in range(self.recipe.turns):
            for phase, role in enumerate(("user", "assistant")):
                alive = [c for c in convs.values() if _open(c)]
                seed = self.recipe.seed + (index * self.recipe.turns + turn) * 2 + phase
                for conv, result in zip(alive, self._sample(alive, role, seed)):
                    if isinstance(result, str):
                        failures.append({"row": conv["item"], "error": result})
                        convs.pop(conv["item"])
                        continue
                    text, reason = result
                    conv["messages"].append({"role": role, "content": text})
                    conv["turns"].append({"role": role, "content": text, "finish_reason": reason})
        rows = [{**c, "model": self.recipe.source.model} for c in convs.values()]
        return BatchOutput(rows, failures)

    def _sample(self, convs: list[dict], role: str, seed: int) -> list[tuple[str, str] | str]:
        """(text, finish_reason) per conversation, or the error of a failed request."""
        from posttrain.data.chat import tokenize_prompt
        from posttrain.generation.backend import GenerationRequest, RequestFailed

        s = self.recipe.query if role == "user" else self.recipe.response
        render = (
            (lambda m: pre_query_ids(self.tokenizer, m))
            if role == "user"
            else (lambda m: tokenize_prompt(self.tokenizer, m))
        )
        requests = [
            GenerationRequest(
                render(c["messages"]), s.max_new_tokens, (), s.temperature, s.top_p, messages=tuple(c["messages"])
            )
            for c in convs
        ]
        results = self.backend.complete(requests, seed=seed, logprobs=False) if requests else []
        return [r.error if isinstance(r, RequestFailed) else (r.text.strip(), r.finish_reason) for r in results]


def _open(conv: dict) -> bool:
    """Still worth extending: every turn so far ended at its end of turn (a cut one is filtered)."""
    return all(t["finish_reason"] == "stop" for t in conv["turns"])


def raw_path(out: Path) -> Path:
    return out.with_name(out.stem + ".raw.jsonl")


def run(recipe: Recipe) -> int:
    from posttrain.data.jobs import JobSpec, run_job

    if not recipe.out:
        raise UserError("synth magpie: no output path (--out PATH or out=PATH)")
    out = Path(recipe.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    backend = open_backend(recipe.source, recipe.batch_size, recipe.seed, "synth magpie: source")
    identity = {
        "command": "synth magpie",
        "source": recipe.source.identity(),
        "n_rows": recipe.n_rows,
        "turns": recipe.turns,
        "system": recipe.system,
        "query": recipe.query.model_dump(),
        "response": recipe.response.model_dump(),
        "seed": recipe.seed,
    }
    raw = raw_path(out)
    manifest = run_job(
        list(range(recipe.n_rows)),
        MagpieBatch(backend, recipe),
        JobSpec(raw, recipe.batch_size, identity, desc="magpie"),
    )
    if manifest["counts"]["failed"]:
        print(
            f"posttrain: {manifest['counts']['failed']} of {recipe.n_rows} conversations failed (reasons in "
            f"{raw.stem}.manifest.json); rerun the same command to retry them"
        )
        return 1
    rows = [json.loads(line) for line in raw.read_text(encoding="utf-8").splitlines()]
    return write_filtered(rows, out, recipe.filters.settings(), {"raw": str(raw), **identity})


def write_filtered(rows: list[dict], out: Path, settings: dict, header: dict) -> int:
    """OUT (the kept rows' messages) and its manifest with the count each filter removed."""
    from posttrain.data.jobs import manifest_path, write_atomically
    from posttrain.synthesis.filters import apply_filters

    kept, removed = apply_filters(rows, settings)
    counts = {"generated": len(rows), "removed": removed, "kept": len(kept)}
    write_atomically(
        manifest_path(out),
        json.dumps({**header, "output": str(out), "filters": settings, "counts": counts}, indent=2) + "\n",
    )
    summary = ", ".join(f"{name} {n}" for name, n in removed.items())
    if not kept:
        out.unlink(missing_ok=True)  # an earlier run's output must not pass for this one's
        raise UserError(
            f"{out}: the filters removed all {len(rows)} generated rows ({summary}); see {manifest_path(out).name}"
        )
    write_atomically(out, "".join(json.dumps({"messages": r["messages"]}) + "\n" for r in kept))
    print(f"wrote {len(kept)} of {len(rows)} conversations to {out} (removed: {summary})")
    return 0
