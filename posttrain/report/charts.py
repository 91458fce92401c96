"""The report's charts: which metrics.jsonl keys go on which chart, and static SVG from matplotlib
(inlined in the page, so it opens with no network and no JavaScript).

A chart lists the keys it plots; each key's held-out twin (eval_<key>) goes on the same chart,
dashed. Keys no chart claims get a chart of their own, so a metric a stage adds later still shows.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

from posttrain.log import Series
from posttrain.report.collect import Run

MAX_POINTS = 1500  # per curve: a 100k-step run stays a light page


@dataclass(frozen=True)
class ChartSpec:
    id: str
    title: str
    keys: tuple[str, ...]  # exact keys; one ending in "/" is a prefix
    ylabel: str = ""

    def claims(self, key: str) -> bool:
        base = key.removeprefix("eval_")
        return any(base.startswith(k) if k.endswith("/") else base == k for k in self.keys)


CHARTS = (
    ChartSpec("loss", "Loss", ("loss",)),
    ChartSpec("lr", "Learning rate", ("lr",)),
    ChartSpec("grad_norm", "Gradient norm (before clipping)", ("grad_norm",)),
    # DPO family and KTO (objectives/preference.py)
    ChartSpec("rewards", "Implicit rewards: chosen vs rejected", ("rewards_chosen", "rewards_rejected")),
    ChartSpec("margin", "Reward margin", ("rewards_margin", "margin")),
    ChartSpec("preference_accuracy", "Preference accuracy (implicit reward ranks chosen first)", ("rewards_accuracy",)),
    ChartSpec(
        "logps",
        "Log-probabilities: chosen vs rejected",
        ("logps_chosen", "logps_rejected", "logps"),
        "sum of token log-probs",
    ),
    # reward models (objectives/reward_step.py) and GRPO share the name "accuracy"
    ChartSpec("accuracy", "Accuracy (RM: pairs ranked right; GRPO: verified)", ("accuracy",)),
    # GRPO / RLOO (stages/grpo.py; objectives/policy_gradient.py logs each stat/<name> as <name>)
    ChartSpec("reward", "Reward: total and per function", ("reward", "reward/")),
    ChartSpec("kl", "KL to the reference", ("kl", "kl_reference_point")),
    ChartSpec("clip_fraction", "Clip fraction", ("clip_fraction",)),
    ChartSpec("response_length", "Response length", ("response_length",), "tokens"),
    ChartSpec("truncated", "Truncated responses (no end-of-turn)", ("truncated",), "share"),
    ChartSpec("entropy", "Entropy (sampled tokens' -log p)", ("entropy",), "nats / token"),
    ChartSpec("absolute_error", "Absolute error (regression heads)", ("absolute_error",)),
    # generation evaluations during training (train/periodic_eval.py)
    ChartSpec("generation_eval", "Evaluation during training", ("exact_match",)),
    ChartSpec("tokens_per_s", "Throughput", ("tokens_per_s",), "tokens / s"),
    ChartSpec("memory", "Peak memory", ("peak_cuda_memory_gb", "peak_rss_gb"), "GiB"),
)
# Bookkeeping, not curves worth a chart.
UNCHARTED = {"step_tokens", "tokens_seen", "step_time_s", "desirable", "eval_desirable", "annotated", "eval_annotated"}


@dataclass
class Curve:
    label: str
    series: Series
    color: str
    held_out: bool  # an eval_* key: dashed, with markers where points are few
    variant: int = 0  # which of the chart's keys, told apart by line style when colours mean runs


@dataclass
class Chart:
    spec: ChartSpec
    curves: list[Curve]
    svg: str = ""


def charts_for(runs: list[Run]) -> list[Chart]:
    """Every chart with at least one curve. One run: a colour per key. Several: a colour per run,
    the keys told apart by line style, so each chart overlays the runs."""
    specs = list(CHARTS) + _extra_specs(runs)
    keys_by_spec = {spec.id: _keys(spec, runs) for spec in specs}
    charts = []
    for spec in specs:
        keys = keys_by_spec[spec.id]
        curves = []
        for r, run in enumerate([run for run in runs if run.series]):  # colours for runs with curves
            for key in keys:
                if key not in run.series:
                    continue
                single = len(runs) == 1
                color = _color(_base_index(key, keys) if single else r)
                label = key if single else f"{run.label}: {key}"
                held_out = key.startswith("eval_")
                variant = 0 if single else _base_index(key, keys)
                curves.append(Curve(label, run.series[key], color, held_out, variant))
        if curves:
            chart = Chart(spec, curves)
            chart.svg = render_svg(chart)
            charts.append(chart)
    return charts


def _keys(spec: ChartSpec, runs: list[Run]) -> list[str]:
    present = {key for run in runs for key in run.series if spec.claims(key)}
    order = {k: i for i, k in enumerate(spec.keys)}
    return sorted(present, key=lambda k: (k.startswith("eval_"), _rank(k.removeprefix("eval_"), order), k))


def _rank(key: str, order: dict[str, int]) -> int:
    return order.get(key, next((i for k, i in order.items() if k.endswith("/") and key.startswith(k)), 0))


def _base_index(key: str, keys: list[str]) -> int:
    bases = list(dict.fromkeys(k.removeprefix("eval_") for k in keys))
    return bases.index(key.removeprefix("eval_"))


def _extra_specs(runs: list[Run]) -> list[ChartSpec]:
    claimed = lambda key: key in UNCHARTED or any(spec.claims(key) for spec in CHARTS)  # noqa: E731
    bases = sorted({key.removeprefix("eval_") for run in runs for key in run.series if not claimed(key)})
    return [ChartSpec("metric-" + re.sub(r"[^A-Za-z0-9_-]+", "-", base), base, (base,)) for base in bases]


TRAIN_STYLES = ("-", ":", "-.", (0, (6, 2, 1, 2)))
EVAL_MARKERS = ("o", "s", "^", "D")
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22")


def _color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def thin(series: Series, max_points: int = MAX_POINTS) -> tuple[list[int], list[float]]:
    """Every k-th point so at most max_points remain, the last point always kept."""
    n = len(series.steps)
    if n <= max_points:
        return series.steps, series.values
    stride = -(-n // max_points)
    idx = list(range(0, n, stride))
    if idx[-1] != n - 1:
        idx.append(n - 1)
    return [series.steps[i] for i in idx], [series.values[i] for i in idx]


def render_svg(chart: Chart) -> str:
    """The chart as an inline <svg> element. Each curve's group has the id <chart>-curve-<i> (the
    browser test finds them); a per-chart hash salt keeps matplotlib's internal ids distinct
    between the charts of one page."""
    import matplotlib
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend
    from matplotlib.ticker import MaxNLocator

    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": chart.spec.id}):
        fig = Figure(figsize=(4.6, 2.8), dpi=100, layout="constrained")
        ax = fig.add_subplot()
        for i, curve in enumerate(chart.curves):
            steps, values = thin(curve.series)
            v = curve.variant
            style = "--" if curve.held_out else TRAIN_STYLES[v % len(TRAIN_STYLES)]
            marker = EVAL_MARKERS[v % len(EVAL_MARKERS)] if curve.held_out and len(steps) <= 30 else None
            (line,) = ax.plot(
                steps,
                values,
                color=curve.color,
                linewidth=1.4,
                label=curve.label,
                linestyle=style,
                marker=marker,
                markersize=3.5,
            )
            line.set_gid(f"{chart.spec.id}-curve-{i}")
        ax.set_title(chart.spec.title, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if chart.spec.ylabel:
            ax.set_ylabel(chart.spec.ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, frameon=False)
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    return _bare_svg(buffer.getvalue())


def _bare_svg(text: str) -> str:
    """The <svg> element alone: no XML prolog or DOCTYPE (meaningless inside HTML), no metadata."""
    text = text[text.index("<svg") :]
    return re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
