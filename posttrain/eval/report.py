"""What an evaluation leaves behind: results.json (metrics with standard errors, model, task
configurations, package versions, seed), samples.jsonl (every prompt, output, extracted answer,
reference and score), and the table printed at the end."""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from posttrain.errors import UserError
from posttrain.eval.engine import TaskResult
from posttrain.eval.sample import Sample

RESULTS_FILE = "results.json"
SAMPLES_FILE = "samples.jsonl"
PACKAGES = (
    "posttrain",
    "torch",
    "transformers",
    "peft",
    "datasets",
    "tokenizers",
    "rouge-score",
    "sacrebleu",
    "numpy",
    "vllm",
)


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def results_document(results: Sequence[TaskResult], run_info: dict[str, Any]) -> dict[str, Any]:
    tasks = {
        r.name: {
            "metrics": r.metrics,
            "n_samples": len(r.samples),
            "seconds": round(r.seconds, 3),
            "config": r.task.model_dump(mode="json"),
            **({"curve": r.curve} if r.curve else {}),
            **({"notes": r.notes} if r.notes else {}),
        }
        for r in results
    }
    return {
        **run_info,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": package_versions(),
        "tasks": tasks,
    }


def write_outputs(out_dir: str | Path, results: Sequence[TaskResult], run_info: dict[str, Any]) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    document = results_document(results, run_info)
    (out / RESULTS_FILE).write_text(json.dumps(_finite(document), indent=2) + "\n", encoding="utf-8")
    with (out / SAMPLES_FILE).open("w", encoding="utf-8") as handle:
        for result in results:
            for sample in result.samples:
                handle.write(json.dumps(_finite(sample.to_json()), ensure_ascii=False, default=str) + "\n")
    return out


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: write null instead (strict parsers reject the bare tokens)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def read_results(run_dir: str | Path) -> tuple[dict[str, Any], dict[str, list[Sample]]]:
    """(results.json, samples by task) of an earlier `posttrain eval` output directory."""
    run_dir = Path(run_dir)
    results_path, samples_path = run_dir / RESULTS_FILE, run_dir / SAMPLES_FILE
    for path in (results_path, samples_path):
        if not path.is_file():
            raise UserError(f"{run_dir}: not an eval output directory (no {path.name})")
    document = json.loads(results_path.read_text(encoding="utf-8"))
    by_task: dict[str, list[Sample]] = {}
    with samples_path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                sample = Sample.from_json(json.loads(line))
                by_task.setdefault(sample.task, []).append(sample)
    return document, by_task


def format_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [[_cell(value) for value in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def results_table(results: Sequence[TaskResult]) -> str:
    rows = []
    for result in results:
        for name, entry in result.metrics.items():
            arrow = "" if entry["higher_is_better"] else " (lower is better)"
            rows.append([result.name, name + arrow, entry["value"], entry["stderr"], len(result.samples)])
    return format_table(rows, ["task", "metric", "value", "stderr", "n"])
