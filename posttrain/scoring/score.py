"""`posttrain score`: score every completion with named scorers, then pairs and SFT data.

    posttrain score --data SAMPLES.jsonl --out SCORED.jsonl --scorer math [--scorer NAME:k=v,...]
        [--pairs best-worst|margin|per-source] [--margin M] [--pairs-out PAIRS.jsonl]
        [--sft-out SFT.jsonl] [--sft-mode verified|majority] [--sft-per-prompt K]
    posttrain score RM_DIR --data RESPONSES.jsonl --out PAIRS.jsonl     (reward model, best vs worst)

Input rows: `posttrain sample` output ({prompt, completions: [{text, ...}]}) or {prompt, responses |
completions: [text or messages]}; every other column is kept, and a verifier reads the row as grpo's
rewards do (reference/answer/solution, numbers, ...). A scorer is any name of posttrain/rewards'
registry (math, exact_match, countdown, ifeval, reward_model, judge, density_ratio, ...) or a
dotted path, with options after a colon: `reward_model:path=RM,weight=0.5`. weight, label and
verifier are the term's own keys, as in grpo.rewards; the total is sum_k weight_k * score_k.
SCORED rows carry, per completion, `scores` (each term's raw value), `score` (the total) and
`correct` (the first verifier's value > 0). Scoring is a job (posttrain/data/jobs.py):
resumable after a crash, --shard-able, with a manifest.
Pairs: {prompt, chosen, rejected, chosen_score, rejected_score} (TRL's preference rows, so
`posttrain dpo` reads them); rows with too few valid completions or all-tied scores are dropped
and counted. SFT (rejection sampling): {messages} of the kept completions: `verified` keeps the
correct ones, `majority` (no reference needed) the ones whose final answer is the most frequent.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import yaml

from posttrain.errors import UserError, row_error
from posttrain.scoring.pairs import (
    PAIR_MODES,
    Candidate,
    best_vs_worst,
    majority_answer,
    margin_pairs,
    per_source_pair,
    why_no_pair,
)

TERM_KEYS = ("weight", "label", "verifier")
SFT_MODES = ("verified", "majority")


def split_scorer(spec: str) -> tuple[str, str]:
    """(name, options text): the options start at the first ':' followed by 'key=', so a dotted
    path 'pkg.module:function' and a URL inside an option value stay whole."""
    found = re.match(r"^(.*?):(\w+=.*)$", spec)
    return (found.group(1).strip(), found.group(2)) if found else (spec.strip(), "")


def parse_scorer(spec: str):
    """'NAME' or 'NAME:key=value,key=value' (values typed as YAML) -> a RewardTerm."""
    from posttrain.rewards import RewardTerm, reward_function

    name, rest = split_scorer(spec)
    options: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--scorer {spec!r}: expected NAME:key=value,... got {item!r}")
        options[key.strip()] = yaml.safe_load(value)
    term = {k: options.pop(k) for k in TERM_KEYS if k in options}
    fn, verifier = reward_function(name, options)
    return RewardTerm(
        term.get("label") or name,
        float(term.get("weight", 1.0)),
        fn,
        bool(term["verifier"]) if "verifier" in term else verifier,
    )


def completion_text(value: Any, where: str) -> str:
    """A completion as text: a string, sample's {text, ...}, a message, or messages (the last one)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        text = value.get("text", value.get("content"))
        if isinstance(text, str):
            return text
    if isinstance(value, list) and value and isinstance(value[-1], dict) and isinstance(value[-1].get("content"), str):
        return value[-1]["content"]
    raise UserError(f"{where}: expected a completion (text, {{text}}, or messages), got {type(value).__name__}")


def read_scoring_rows(path: str) -> list[dict]:
    from posttrain.data.records import RecordError, to_record
    from posttrain.data.reward import RESPONSE_LIST_FIELDS
    from posttrain.data.sources import read_rows

    items = []
    for number, fields in read_rows(path):
        name = next((f for f in ("completions", *RESPONSE_LIST_FIELDS) if fields.get(f) is not None), "completions")
        listed = fields.get(name)
        if not isinstance(listed, list):
            raise row_error(path, number, name, "expected a list of completions")
        try:
            record = to_record({k: v for k, v in fields.items() if k not in ("chosen", "rejected")}, "prompt")
        except RecordError as err:
            raise row_error(path, number, err.field, err.problem) from None
        texts = [completion_text(c, f"{path}: row {number}: field '{name}[{i}]'") for i, c in enumerate(listed)]
        items.append(
            {
                "row": number,
                "fields": fields,
                "list_field": name,
                "messages": record.prompt,
                "reference": record.reference,
                "texts": texts,
            }
        )
    if not items:
        raise UserError(f"{path}: no rows")
    return items


def check_inputs(items: list[dict], names: list[str], path: str) -> None:
    """A verifier without its inputs (no reference, ...) is a one-line error before any scoring."""
    from posttrain.rewards import REQUIRED_FIELDS

    for name in names:
        for field in REQUIRED_FIELDS.get(name, ()):
            for item in items:
                present = item["reference"] if field == "reference" else item["fields"].get(field)
                if present is None:
                    raise UserError(
                        f"{path}: row {item['row']}: scorer '{name}' needs field '{field}'"
                        + (" (reference, answer or solution)" if field == "reference" else "")
                    )


class ScoreBatch:
    """process_batch for the job runner: every completion of a batch of rows scored at once."""

    def __init__(self, reward_set):
        self.reward_set = reward_set

    def __call__(self, batch: list[dict], index: int):
        from posttrain.data.jobs import BatchOutput

        samples = [
            {**it["fields"], "prompt": it["messages"], "reference": it["reference"]}
            for it in batch
            for _ in it["texts"]
        ]
        unscored: list[dict[str, str]] = []
        scores = self.reward_set.score_all(samples, [t for it in batch for t in it["texts"]], unscored)
        rows, start = [], 0
        for it in batch:
            mine, why = scores[start : start + len(it["texts"])], unscored[start : start + len(it["texts"])]
            start += len(it["texts"])
            originals = it["fields"][it["list_field"]]
            completions = [
                {**(c if isinstance(c, dict) and "text" in c else {"text": t}), **self._scored(s, u)}
                for c, t, s, u in zip(originals, it["texts"], mine, why)
            ]
            rows.append(
                {
                    **{k: v for k, v in it["fields"].items() if k != it["list_field"]},
                    "completions": completions,
                    "row": it["row"],
                }
            )
        return BatchOutput(rows)

    def _scored(self, scores: dict[str, float], unscored: dict[str, str]) -> dict:
        """A completion some term could not score gets score None (it enters no pair) and the
        reasons under `unscored`; JSON has no NaN, so such a term's value is written as null."""
        if not unscored:
            return {
                "scores": scores,
                "score": self.reward_set.total(scores),
                "correct": self.reward_set.correct(scores),
            }
        return {
            "scores": {k: None if k in unscored else v for k, v in scores.items()},
            "score": None,
            "correct": False,
            "unscored": unscored,
        }


def count_unscored(rows: list[dict]) -> tuple[dict[str, int], list[str]]:
    """Counts and one warning for the completions some scorer could not score (judge replies
    naming no grade, failed judge requests), over the whole output."""
    completions = [c for r in rows for c in r["completions"]]
    unscored = [c for c in completions if c.get("unscored")]
    counts = {"completions_unscored": len(unscored)}
    if not unscored:
        return counts, []
    example = next(iter(unscored[0]["unscored"].values()))
    warning = (
        f"{len(unscored)} of {len(completions)} completions have no score (score: null, the reason "
        f"under 'unscored'; first: {example[:160]})"
    )
    return counts, [warning]


def _pick(row: dict, i: int):
    """A conversational prompt gets message-list responses, as TRL's conversational format has them."""
    text = row["completions"][i]["text"]
    return text if isinstance(row["prompt"], str) else [{"role": "assistant", "content": text}]


def make_pairs(rows: list[dict], mode: str, margin: float | None) -> tuple[list[dict], dict]:
    if mode not in PAIR_MODES:
        raise UserError(f"--pairs {mode!r}: expected one of {', '.join(PAIR_MODES)}")
    if mode == "margin" and not (margin and margin > 0):
        raise UserError("--pairs margin needs --margin M > 0")
    counts = {"pairs": 0, "too_few": 0, "ties": 0, "below_margin": 0}
    groups = _groups(rows, by_prompt=mode == "per-source")
    out = []
    for group in groups:
        cands = [Candidate(c["score"], c.get("source", r.get("source"))) for r, c in group]
        found = (
            margin_pairs(cands, margin)
            if mode == "margin"
            else [p]
            if (p := (per_source_pair(cands) if mode == "per-source" else best_vs_worst(cands)))
            else []
        )
        if not found:
            counts[why_no_pair(cands) or ("below_margin" if mode == "margin" else "too_few")] += 1
        for i, j in found:
            (ri, ci), (rj, cj) = group[i], group[j]
            out.append(
                {
                    "prompt": ri["prompt"],
                    "chosen": _pick(ri, ri["completions"].index(ci)),
                    "rejected": _pick(rj, rj["completions"].index(cj)),
                    "chosen_score": ci["score"],
                    "rejected_score": cj["score"],
                    "row": ri["row"],
                }
            )
    counts["pairs"] = len(out)
    return out, counts


def _groups(rows: list[dict], by_prompt: bool) -> list[list[tuple[dict, dict]]]:
    """(row, completion) lists: one per row, or one per distinct prompt (rows of several sources)."""
    if not by_prompt:
        return [[(r, c) for c in r["completions"]] for r in rows]
    groups: dict[str, list] = {}
    for r in rows:
        groups.setdefault(json.dumps(r["prompt"], sort_keys=True), []).extend((r, c) for c in r["completions"])
    return list(groups.values())


def rejection_sft(rows: list[dict], mode: str, per_prompt: int | None) -> tuple[list[dict], dict]:
    from posttrain.data.records import to_record
    from posttrain.rewards.math import answers_match, extract_answer

    if mode not in SFT_MODES:
        raise UserError(f"--sft-mode {mode!r}: expected one of {', '.join(SFT_MODES)}")
    out, counts = [], {"kept": 0, "prompts_with_none": 0, "no_majority": 0}
    for r in rows:
        texts = [c["text"] for c in r["completions"]]
        if mode == "verified":
            keep = [t for t, c in zip(texts, r["completions"]) if c["correct"]]
        else:
            majority = majority_answer([extract_answer(t) for t in texts])
            counts["no_majority"] += majority is None
            keep = [t for t in texts if majority is not None and answers_match(extract_answer(t), majority)]
        keep = list(dict.fromkeys(keep))[:per_prompt]  # identical texts once
        counts["prompts_with_none"] += not keep
        messages = to_record({"prompt": r["prompt"]}, "prompt").prompt
        out += [{"messages": messages + [{"role": "assistant", "content": t}], "row": r["row"]} for t in keep]
    counts["kept"] = len(out)
    return out, counts


def write_derived(path: str, rows: list[dict], counts: dict, source: str) -> None:
    from posttrain.data.jobs import manifest_path, write_atomically

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_atomically(Path(path), "".join(json.dumps(r) + "\n" for r in rows))
    write_atomically(manifest_path(Path(path)), json.dumps({"from": source, "counts": counts}, indent=2) + "\n")


def score_command(args: argparse.Namespace) -> int:
    from posttrain.data.jobs import JobSpec, Shard, add_run_notes, run_job
    from posttrain.generation.sample import input_identity
    from posttrain.rewards import RewardSet

    specs, pairs_out, scored_out = list(args.scorer), args.pairs_out, args.out
    if args.model:  # the reward-model form: best-vs-worst pairs to --out
        specs = specs or [
            f"reward_model:path={args.model},batch_size={args.batch_size}"
            + (f",attribute={_attribute_index(args.model, args.attribute)}" if args.attribute else "")
            + (f",dtype={args.dtype}" if args.dtype else "")
        ]
        pairs_out, scored_out = pairs_out or args.out, str(Path(args.out).with_suffix(".scored.jsonl"))
    if not specs:
        raise UserError("name at least one scorer: --scorer NAME (e.g. math, reward_model:path=DIR)")
    shard = Shard.parse(args.shard)
    items = read_scoring_rows(args.data)
    names = [split_scorer(spec)[0] for spec in specs]
    check_inputs(items, names, args.data)  # before any model loads
    terms = [parse_scorer(spec) for spec in specs]
    identity = {"command": "score", "inputs": [input_identity(args.data, len(items))], "scorers": specs}
    spec = JobSpec(Path(scored_out), args.batch_size, identity, shard, desc="score", show_progress=not args.quiet)
    manifest = run_job(items, ScoreBatch(RewardSet(terms)), spec)
    rows = [json.loads(line) for line in Path(scored_out).read_text().splitlines()]
    print(f"scored {sum(len(r['completions']) for r in rows)} completions of {len(rows)} rows: {scored_out}")
    counts, warnings = count_unscored(rows)
    manifest = add_run_notes(Path(scored_out), counts, warnings)
    for warning in warnings:
        print(f"posttrain: warning: {warning}")
    if pairs_out or args.pairs:
        pairs, counts = make_pairs(rows, args.pairs or "best-worst", args.margin)
        write_derived(pairs_out or str(Path(scored_out).with_suffix(".pairs.jsonl")), pairs, counts, scored_out)
        print(
            f"pairs: {counts['pairs']} written; dropped {counts['ties']} with all scores tied, "
            f"{counts['too_few']} with fewer than 2 valid completions, {counts['below_margin']} below the margin"
        )
    if args.sft_out:
        sft, counts = rejection_sft(rows, args.sft_mode, args.sft_per_prompt)
        write_derived(args.sft_out, sft, counts, scored_out)
        print(f"sft: kept {counts['kept']} completions; {counts['prompts_with_none']} prompts kept none")
    return 1 if manifest["failures"] else 0


def _attribute_index(model: str, name: str) -> int:
    from posttrain.model.reward_model import load_reward_model_dir

    reward_model, _ = load_reward_model_dir(model, None)
    labels = [reward_model.config.id2label[i] for i in range(reward_model.config.num_labels)]
    if name not in labels:
        raise UserError(f"--attribute {name}: the model's outputs are {', '.join(labels)}")
    return labels.index(name)
