"""The low-bit study's table (Huang et al. 2024, "How good are low-bit quantized LLaMA3 models?"):
perplexity and task accuracy of one model quantised by each method at each bit width.

    posttrain quantize-study MODEL --text TEXT.jsonl --task-data TEST.jsonl [--bits 8,4,3,2]

Every configuration quantises the same full-precision weights in memory and is evaluated through
the evaluation engine (the perplexity task and an exact-match generation task), exactly as
`posttrain eval` would evaluate the model directory `posttrain quantize` writes.
"""

from __future__ import annotations

import json
from pathlib import Path

from posttrain.errors import UserError
from posttrain.quantize.run import UNAVAILABLE, check_arguments


def study_configs(methods: list[str], bits: list[int], group_size: int | None) -> list[dict]:
    """(method, bits, group size) rows: rtn at every width, nf4 at 4, int8 at 8, and the
    methods that cannot run here as rows that say why."""
    rows = []
    for method in methods:
        for b in bits:
            if method == "nf4" and b != 4 or method == "int8" and b != 8:
                continue
            rows.append({"method": method, "bits": b, "group_size": None if method == "int8" else group_size})
    return rows


def run_study(
    model: str,
    text: str,
    task_data: str,
    methods: list[str],
    bits: list[int],
    group_size: int | None,
    limit: int | None,
    batch_size: int,
    answer: str = "final_number",
    max_new_tokens: int = 64,
) -> list[dict]:
    import torch
    from transformers import AutoModelForCausalLM

    from posttrain.checkpoint.weights import read_state_dict
    from posttrain.eval import evaluate_tasks
    from posttrain.log import progress_bar
    from posttrain.model.load import load_tokenizer
    from posttrain.model.paths import resolve_model_path
    from posttrain.quantize.operators import quantize_state
    from posttrain.train.periodic_eval import exact_match_task

    for path in (text, task_data):
        if not Path(path).is_file():
            raise UserError(f"{path}: no such file")
    path = resolve_model_path(model)
    configs = study_configs(methods, bits, group_size)
    for c in configs:  # an impossible combination fails before any evaluation
        if c["method"] not in UNAVAILABLE:
            check_arguments(c["method"], c["bits"], c["group_size"])
    tokenizer, original = load_tokenizer(path), read_state_dict(path)
    net = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    tasks = [
        {"name": "perplexity", "kind": "perplexity", "format": "text", "data": text},
        exact_match_task(task_data, answer, max_new_tokens),
    ]
    rows, bar = [], progress_bar(len(configs) + 1, desc="quantize-study")
    for c in [{"method": "none (fp32)", "bits": 32, "group_size": None}, *configs]:
        bar.update(1)
        if c["method"] in UNAVAILABLE:
            rows.append({**c, "perplexity": None, "exact_match": None, "note": UNAVAILABLE[c["method"]]})
            continue
        full = c["method"] == "none (fp32)"
        loaded = net.load_state_dict(
            original if full else quantize_state(original, c["method"], c["bits"], c["group_size"]), strict=False
        )
        if loaded.unexpected_keys:  # strict=False only tolerates a tied head absent from the files
            raise UserError(f"{path}: weights do not fit its config: {loaded.unexpected_keys[:3]}")
        metrics = evaluate_tasks(net, tokenizer, tasks, limit, batch_size)
        rows.append(
            {**c, "perplexity": metrics["perplexity/perplexity"], "exact_match": metrics["exact_match/exact_match"]}
        )
    bar.close()
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| method | bits | group | perplexity | exact match |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        if r["perplexity"] is None:
            lines.append(f"| {r['method']} | {r['bits']} | {r['group_size'] or '-'} | not run | not run |")
        else:
            lines.append(
                f"| {r['method']} | {r['bits']} | {r['group_size'] or 'row'} | "
                f"{r['perplexity']:.3f} | {r['exact_match']:.1%} |"
            )
    return "\n".join(lines)


def write_study(out: str | Path, rows: list[dict]) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".study.json.tmp"
    tmp.write_text(json.dumps(rows, indent=2) + "\n")
    tmp.replace(out / "study.json")
    (out / ".study.md.tmp").write_text(table(rows) + "\n")
    (out / ".study.md.tmp").replace(out / "study.md")
    return out / "study.json"
