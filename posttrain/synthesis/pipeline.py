"""What the model-driven synthesis recipes share: the job that does the model calls, the training
files written from its output, the recipe-level manifest, and parsing a model's list answer.

A recipe's model calls run as one resumable job (data/jobs.py run_job) whose rows record
every candidate and the decision taken on it (kept, or which filter removed it, and why). The
training files (SFT `{"messages": ...}` rows, preference `{"prompt", "chosen", "rejected"}` rows)
are then written from that record in one cheap pass, with OUT/manifest.json holding the counts;
a run whose filters left nothing exits with a one-line error naming what each filter removed.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from posttrain.data.jobs import JobSpec, run_job, write_atomically
from posttrain.errors import UserError

_ITEM = re.compile(r"^\s*(?:[-*\u2022+]|\(?\d{1,3}[.):]|\(?[a-zA-Z][.)])\s+(.+?)\s*$")


def parse_list(text: str) -> list[str]:
    """The items of a model's list answer: a JSON array of strings, or numbered / bulleted lines
    ('1. X', '2) X', '- X', '* X', 'a) X'); markdown bold and a trailing ': description' or
    ' - description' are dropped, duplicates (case-insensitive) kept once. Without any list
    markers, each non-empty line that is not a heading (ends with ':') is an item."""
    stripped = text.strip()
    fenced = re.sub(r"^```\w*\n|\n```$", "", stripped)
    if fenced.startswith("["):
        try:
            value = json.loads(fenced)
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return _unique(_clean(v) for v in value)
        except json.JSONDecodeError:
            pass
    lines = [line for line in stripped.splitlines() if line.strip()]
    marked = [m.group(1) for m in map(_ITEM.match, lines) if m]
    items = marked or [line for line in lines if not line.rstrip().endswith(":")]
    return _unique(_clean(item) for item in items)


def _clean(item: str) -> str:
    item = item.replace("**", "").replace("__", "").strip().strip("\"'`").strip()
    for sep in (": ", " - ", " \u2013 ", " \u2014 "):
        head, found, _ = item.partition(sep)
        if found and head.strip():
            item = head
            break
    return item.strip().rstrip(".:;,").strip().strip("\"'`").strip()


def _unique(items) -> list[str]:
    seen, out = set(), []
    for item in items:
        key = item.casefold()
        if item and key not in seen:
            seen.add(key)
            out.append(item)
    return out


def run_model_job(items: list, process_batch, out: Path, batch_size: int, identity: dict, desc: str) -> dict:
    """The recipe's model calls as one resumable job writing `out` (+ its job manifest)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return run_job(items, process_batch, JobSpec(out, batch_size, identity, desc=desc))


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    write_atomically(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def removal_counts(rows: list[dict]) -> dict[str, int]:
    """How many candidates each filter removed (rows carry `removed_by`: a filter's name or null)."""
    return dict(sorted(Counter(r["removed_by"] for r in rows if r.get("removed_by")).items()))


def job_failed(manifest: dict, out: Path) -> int:
    """Items whose model calls failed stay failed in the job (a rerun retries them): say so."""
    failed = manifest["counts"]["failed"]
    if failed:
        print(
            f"posttrain: {failed} of {manifest['counts']['items']} items failed (reasons in "
            f"{out.with_name(out.stem + '.manifest.json')}); rerun the same command to retry them"
        )
    return failed


def finish(
    out_dir: Path,
    method: str,
    identity: dict,
    counts: dict,
    files: dict[str, str],
    removed: dict[str, int],
    kept: int,
    what: str,
) -> int:
    """Write OUT/manifest.json; a run that kept nothing is an error naming what removed it."""
    manifest = {
        "method": method,
        **identity,
        "counts": counts,
        "removed_by": removed,
        "files": files,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_atomically(out_dir / "manifest.json", json.dumps(manifest, indent=2, default=str) + "\n")
    if kept == 0:
        why = ", ".join(f"{name} removed {n}" for name, n in removed.items()) or "no candidate was made"
        raise UserError(f"{out_dir}: no {what} left ({why}); see {out_dir / 'manifest.json'}")
    for name, path in files.items():
        print(f"{name}: {path}")
    print(f"counts: {json.dumps(counts)}")
    return 0


def sft_row(user: str, assistant: str, **extra) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}], **extra}


def preference_row(prompt: str, chosen: str, rejected: str, **extra) -> dict:
    """The row shape `posttrain dpo` reads (data/records.py PreferenceRecord)."""
    return {
        "prompt": [{"role": "user", "content": prompt}],
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
        **extra,
    }
