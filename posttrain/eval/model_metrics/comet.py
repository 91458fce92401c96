"""COMET (Rei et al. 2020) through the `unbabel-comet` package with a checkpoint the user supplies:
no COMET model ships with posttrain or any offline wheel, so this metric needs the user's own
downloaded checkpoint file (e.g. Unbabel/wmt22-comet-da's checkpoints/model.ckpt)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from posttrain.errors import UserError


def load_comet(checkpoint: str | None) -> Any:
    if not checkpoint:
        raise UserError(
            "the comet metric needs a checkpoint: --set TASK.model_metrics.comet_checkpoint=PATH "
            "(no COMET model is available offline; download one, e.g. Unbabel/wmt22-comet-da)"
        )
    if not Path(checkpoint).is_file():
        raise UserError(f"comet checkpoint {checkpoint}: not a file")
    try:
        from comet import load_from_checkpoint
    except ImportError:
        raise UserError("the comet metric needs `pip install unbabel-comet`") from None
    return load_from_checkpoint(checkpoint)


def comet_scores(
    model: Any, sources: Sequence[str], hypotheses: Sequence[str], references: Sequence[str], batch_size: int = 8
) -> list[float]:
    """Segment scores from a COMET model's predict(): one per (source, hypothesis, reference)."""
    data = [{"src": s, "mt": h, "ref": r} for s, h, r in zip(sources, hypotheses, references)]
    output = model.predict(data, batch_size=batch_size, gpus=0, progress_bar=False)
    scores = [float(s) for s in output.scores]
    if len(scores) != len(data):
        raise UserError(f"comet returned {len(scores)} scores for {len(data)} segments")
    return scores
