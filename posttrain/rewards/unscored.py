"""A scorer's "no score" for one completion, with the reason (an LLM judge whose reply names no
grade, a judge request that failed): `posttrain score` records it per completion and counts it;
in the total it is NaN (so a trainer sees a non-finite reward, never a made-up one)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Unscored:
    reason: str
