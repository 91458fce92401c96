"""One evaluated document: what the model saw and said, what it was compared with, its scores.

A task's metrics are computed from its samples alone (metrics.py), which is what lets
`posttrain eval compare` recompute any metric on resampled subsets of samples.jsonl.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Sample:
    task: str
    doc_id: int
    prompt: str
    output: str
    reference: Any = None
    extracted: Any = None
    scores: dict[str, float] = field(default_factory=dict)  # per-sample metric values
    extra: dict[str, Any] = field(default_factory=dict)  # what corpus-level metrics need

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Sample:
        return cls(
            **{key: row.get(key) for key in ("task", "doc_id", "prompt", "output", "reference", "extracted")},
            scores=row.get("scores") or {},
            extra=row.get("extra") or {},
        )
