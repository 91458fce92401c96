"""What the embedding-dedup and CHES steps share: a row's text, and the atomic split of a file
into kept rows (OUT), removed rows (OUT-stem.removed.jsonl, each saying why) and a manifest
(OUT-stem.manifest.json, as generation/jobs.py names it).

Kept minimal on purpose: the other curation steps' row helpers (curation/rows.py) are meant to
take this over when the branches meet.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from posttrain.errors import row_error
from posttrain.generation.jobs import file_sha256, manifest_path, write_atomically


def removed_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".removed.jsonl")


def _content(value: Any) -> str | None:
    """A string, or the contents of a message list joined by newlines."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(m, dict) for m in value):
        parts = [m.get("content", m.get("value")) for m in value]
        if all(isinstance(p, str) for p in parts):
            return "\n".join(parts)
    return None


_AUTO_FIELDS = (("text",), ("messages",), ("conversations",), ("prompt", "chosen"),
                ("instruction", "input", "output"), ("prompt",))


def row_text(row: dict, field: str | None, path: str | Path, number: int) -> str:
    """The text a row is compared by: `field` (a string or a message list), or by default the
    first of text / messages / conversations / prompt+chosen / instruction+input+output / prompt."""
    choices = [(field,)] if field else [f for f in _AUTO_FIELDS if all(k in row for k in f)][:1]
    if not choices:
        raise row_error(path, number, "text", "no text, messages, conversations, prompt or instruction "
                        "field (name the column with field=NAME)")
    parts = [_content(row.get(k)) for k in choices[0]]
    if any(p is None for p in parts):
        raise row_error(path, number, "+".join(choices[0]), "expected a string or a list of messages")
    return "\n".join(parts)


class SplitWriter:
    """Rows streamed into temp files beside OUT; finish() renames both into place and writes the
    manifest, so a crash leaves the previous outputs (or none), never half a file."""

    def __init__(self, out: str | Path):
        self.out, self.removed = Path(out), removed_path(out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = {p: p.with_name(f".tmp-{p.name}-{os.getpid()}") for p in (self.out, self.removed)}
        self._files = {p: open(t, "w", encoding="utf-8") for p, t in self._tmp.items()}
        self.counts = {"kept": 0, "removed": 0}

    def keep(self, row: dict) -> None:
        self._files[self.out].write(json.dumps(row) + "\n")
        self.counts["kept"] += 1

    def remove(self, row: dict) -> None:
        self._files[self.removed].write(json.dumps(row) + "\n")
        self.counts["removed"] += 1

    def finish(self, identity: dict) -> dict:
        for path, handle in self._files.items():
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            os.replace(self._tmp[path], path)
        manifest = {**identity, "output": str(self.out), "removed_rows": str(self.removed),
                    "counts": dict(self.counts),
                    "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        write_atomically(manifest_path(self.out), json.dumps(manifest, indent=2, default=str) + "\n")
        return manifest

    def abort(self) -> None:
        for path, handle in self._files.items():
            handle.close()
            self._tmp[path].unlink(missing_ok=True)


def input_identity(path: str | Path) -> dict:
    return {"path": str(path), "sha256": file_sha256(path) if Path(path).is_file() else None}
