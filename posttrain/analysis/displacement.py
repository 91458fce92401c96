"""Likelihood displacement (Razin et al., 2024, "Unintentional Unalignment: Likelihood Displacement
in Direct Preference Optimization"; Pal et al., 2024, "Smaug"): a preference objective raises the
margin log p(chosen) - log p(rejected) while the chosen response's own log-probability falls, so
probability mass moves to responses outside the pairs.

The one place the flag is computed: `posttrain report` shows it in its HTML and `posttrain analyze
displacement` plots the curves beside it. A trend is judged on the held-out log-probs (the same
pairs at every evaluation: first vs last value) when the run evaluated at least twice, else on the
training log-probs (mean of the first vs the last quarter of steps: they come from different
batches and are noisy step to step). Kinds: "both decreasing" (chosen and rejected fell, rejected
usually faster: the margin grows by pushing both down) and "chosen decreasing" (only chosen fell).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from posttrain.errors import UserError

BOTH, CHOSEN = "both decreasing", "chosen decreasing"


class SeriesLike(Protocol):
    steps: Sequence[int]
    values: Sequence[float]


@dataclass(frozen=True)
class Trend:
    key: str  # the metrics.jsonl key judged, e.g. eval_logps_chosen
    start: float
    end: float

    @property
    def fell(self) -> bool:
        return self.end < self.start


@dataclass(frozen=True)
class Displacement:
    key: str  # the chosen log-prob's key, start and end (as the report prints them)
    start: float
    end: float
    kind: str = CHOSEN  # BOTH or CHOSEN
    rejected: Trend | None = None


def trend(series: Mapping[str, SeriesLike], name: str) -> Trend | None:
    """The held-out eval_<name> first -> last, else the training <name>'s first -> last quarter mean."""
    held_out = series.get(f"eval_{name}")
    if held_out and len(held_out.values) >= 2:
        return Trend(f"eval_{name}", held_out.values[0], held_out.values[-1])
    train = series.get(name)
    if not train or len(train.values) < 2:
        return None
    quarter = max(1, len(train.values) // 4)
    return Trend(name, sum(train.values[:quarter]) / quarter, sum(train.values[-quarter:]) / quarter)


def likelihood_displacement(series: Mapping[str, SeriesLike]) -> Displacement | None:
    """The chosen log-prob's fall over the run (with the rejected one's trend, which names the
    kind), or None when it did not fall or the run logs no chosen log-probs."""
    chosen = trend(series, "logps_chosen")
    if chosen is None or not chosen.fell:
        return None
    rejected = trend(series, "logps_rejected")
    kind = BOTH if rejected is not None and rejected.fell else CHOSEN
    return Displacement(chosen.key, chosen.start, chosen.end, kind, rejected)


def summary(series: Mapping[str, SeriesLike]) -> dict[str, Any]:
    """The JSON report of `posttrain analyze displacement`: each trend and the flag."""
    found = likelihood_displacement(series)
    trends = {name: trend(series, name) for name in ("logps_chosen", "logps_rejected")}
    return {
        "displacement": found is not None,
        "kind": found.kind if found else None,
        **{name: None if t is None else {"key": t.key, "start": t.start, "end": t.end} for name, t in trends.items()},
    }


def plot(series: Mapping[str, SeriesLike], path, title: str) -> None:
    """Chosen and rejected log-probs over steps (training solid, held-out dashed with markers) to
    an image file (format from the suffix: .png, .svg, .pdf), written through a temp file."""
    import os
    from pathlib import Path

    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    from posttrain.checkpoint.io import TMP_PREFIX

    figure = Figure(figsize=(7, 4))
    ax = figure.add_subplot()
    for name, color in (("logps_chosen", "#1f77b4"), ("logps_rejected", "#d62728")):
        for key, style in ((name, {"linestyle": "-"}), (f"eval_{name}", {"linestyle": "--", "marker": "o"})):
            if key in series and series[key].values:
                ax.plot(series[key].steps, series[key].values, color=color, label=key, **style)
    found = likelihood_displacement(series)
    flag = f"likelihood displacement ({found.kind})" if found else "no likelihood displacement"
    ax.set(xlabel="step", ylabel="log-probability", title=f"{title}: {flag}")
    ax.legend(loc="best", fontsize="small")
    figure.tight_layout()
    path = Path(path)
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}")
    try:
        figure.savefig(tmp, format=path.suffix.lstrip(".") or "png")
        os.replace(tmp, path)
    except (OSError, ValueError) as err:  # a missing folder, an unknown image format
        tmp.unlink(missing_ok=True)
        raise UserError(f"{path}: cannot write the plot: {getattr(err, 'strerror', None) or err}") from None
