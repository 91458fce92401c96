"""The report page: one self-contained HTML file (inline CSS and SVG, no script, no remote
reference), so it opens offline and can be mailed with the run."""

from __future__ import annotations

import html
import math
import re
import statistics
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

from posttrain.report.charts import Chart, charts_for
from posttrain.report.collect import (
    Comparison,
    Run,
    compare_evaluations,
    likelihood_displacement,
)

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1500px;
padding:0 16px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px} .muted{color:#666;font-size:13px}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:8px}
figure.chart{margin:0;border:1px solid #eee;border-radius:6px;padding:4px;background:#fff}
figure.chart svg{width:100%;height:auto}
table{border-collapse:collapse;font-size:13px;margin:6px 0} th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f5f5f5} td.num{text-align:right;font-variant-numeric:tabular-nums}
.flag{background:#fff3e0;border-left:4px solid #e65100;padding:6px 10px;margin:8px 0;font-size:14px}
.ok{background:#e8f5e9;border-left:4px solid #2e7d32;padding:6px 10px;margin:8px 0;font-size:14px}
pre{background:#f7f7f7;padding:8px;overflow:auto;font-size:12px;max-height:420px}
td.text{white-space:pre-wrap;font-family:ui-monospace,Menlo,monospace;font-size:12px;max-width:520px}
.stats span{display:inline-block;margin-right:22px;font-size:14px}
"""
FINAL_KEYS = (
    "loss",
    "eval_loss",
    "rewards_accuracy",
    "eval_rewards_accuracy",
    "rewards_margin",
    "eval_logps_chosen",
    "accuracy",
    "eval_accuracy",
    "reward",
    "kl",
    "entropy",
    "exact_match",
)


def render_report(runs: list[Run], title: str = "posttrain report") -> str:
    charts = charts_for(runs)
    comparisons = compare_evaluations(runs) if len(runs) > 1 else []
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        f"<h1>{_e(title)}</h1>",
        f"<p class='muted'>{len(runs)} run(s): {_e(', '.join(r.label for r in runs))} · {created}</p>",
    ]
    if len(runs) > 1:
        parts += [
            "<h2 id='comparison'>Comparison</h2>",
            _final_table(runs),
            _comparison_tables(comparisons),
            _charts_html(charts, "overlay"),
        ]
    for i, run in enumerate(runs):
        parts.append(_run_section(run, i, charts if len(runs) == 1 else None))
    body = "\n".join(p for p in parts if p)
    return (
        f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width,initial-scale=1'><title>{_e(title)}</title>"
        f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, int):
        return str(value)
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.3g}"
    return f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    return f"<table class='{cls}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _td(value: Any, numeric: bool = False, cls: str = "") -> str:
    text = _num(value) if numeric else _e(value if value is not None else "–")
    classes = " ".join(c for c in ("num" if numeric else "", cls) if c)
    return f"<td class='{classes}'>{text}</td>" if classes else f"<td>{text}</td>"


def _charts_html(charts: list[Chart], scope: str) -> str:
    if not charts:
        return "<p class='muted'>No training curves (no metrics.jsonl).</p>"
    figures = "".join(
        f"<figure class='chart' data-chart='{_e(c.spec.id)}' data-curves='{len(c.curves)}'>{c.svg}</figure>"
        for c in charts
    )
    return f"<div class='charts' data-scope='{scope}'>{figures}</div>"


def _final_table(runs: list[Run]) -> str:
    keys = [k for k in FINAL_KEYS if any(k in r.series for r in runs)]
    header = ["run", "stage", "steps", *keys, "tokens/s (median)", "peak memory (GiB)"]
    rows = []
    for run in runs:
        steps = max((s.steps[-1] for s in run.series.values() if s.steps), default=None)
        speed, memory = _throughput(run)
        rows.append(
            [
                _td(run.label),
                _td(run.stage),
                _td(steps),
                *[_td(run.last(k), True) for k in keys],
                _td(round(speed) if speed is not None else None, True),
                _td(memory, True),
            ]
        )
    return "<h3>Final training metrics</h3>" + _table(header, rows)


def _throughput(run: Run) -> tuple[float | None, float | None]:
    speed = run.series.get("tokens_per_s")
    memory = [run.last(k) for k in ("peak_cuda_memory_gb", "peak_rss_gb") if run.last(k) is not None]
    return (statistics.median(speed.values) if speed else None), (memory[0] if memory else None)


def _comparison_tables(comparisons: list[Comparison]) -> str:
    if not comparisons:
        return ""
    rows = []
    for c in comparisons:
        if c.note:
            rows.append([_td(c.run), _td(c.baseline), _td(c.note)] + [_td("")] * 7)
        for d in c.differences:
            rows.append(
                [
                    _td(c.run),
                    _td(c.baseline),
                    _td(f"{d.task} / {d.metric}"),
                    _td(d.value_a, True),
                    _td(d.value_b, True),
                    _td(d.delta, True),
                    _td(f"[{d.ci_low:+.4f}, {d.ci_high:+.4f}]"),
                    _td(d.p_value, True),
                    _td("*" if d.significant else ""),
                    _td(d.n_shared),
                ]
            )
    header = ["run (B)", "baseline (A)", "task / metric", "A", "B", "B − A", "95% CI", "p", "sig", "n"]
    changed = sorted({t for c in comparisons for t in c.changed_tasks})
    note = f"<p class='muted'>Task configurations differ for: {_e(', '.join(changed))}.</p>" if changed else ""
    return (
        "<h3>Evaluations against the baseline (<code>posttrain eval compare</code>)</h3>"
        + _table(header, rows)
        + "<p class='muted'>* p &lt; 0.05, paired bootstrap over the shared "
        "documents.</p>" + note
    )


def _run_section(run: Run, index: int, charts: list[Chart] | None) -> str:
    parts = [
        f"<h2 id='run-{index}'>{_e(run.label)}</h2>",
        f"<p class='muted'>{_e(run.path)} · stage: {_e(run.stage or 'unknown')}</p>",
        _stats_line(run),
        _displacement_html(run),
    ]
    if charts is not None:
        parts.append(_charts_html(charts, "run"))
    for evaluation in run.evaluations:
        parts.append(_evaluation_html(evaluation))
    if run.rollouts:
        parts.append(_rollouts_html(run.rollouts))
    if run.recipe_text is not None:
        parts.append(
            f"<details><summary>Resolved recipe (config.yaml)</summary><pre>{_e(run.recipe_text)}</pre></details>"
        )
    return "\n".join(p for p in parts if p)


def _stats_line(run: Run) -> str:
    if not run.series:
        return ""
    speed, memory = _throughput(run)
    steps = max((s.steps[-1] for s in run.series.values() if s.steps), default=None)
    items = [
        ("steps", steps),
        ("final loss", _num(run.last("loss"))),
        ("tokens/s (median)", _num(speed, 0)),
        ("peak memory", f"{_num(memory, 2)} GiB" if memory is not None else "–"),
        ("tokens seen", f"{int(run.last('tokens_seen')):,}" if run.last("tokens_seen") else "–"),
    ]
    return "<p class='stats'>" + "".join(f"<span><b>{_e(k)}</b> {_e(v)}</span>" for k, v in items) + "</p>"


def _displacement_html(run: Run) -> str:
    if "logps_chosen" not in run.series:
        return ""
    found = likelihood_displacement(run)
    if found is None:
        return "<p class='ok' data-flag='no-displacement'>The chosen log-probability did not fall.</p>"
    rejected = (
        f"; {_e(found.rejected.key)} {found.rejected.start:.3f} → {found.rejected.end:.3f}" if found.rejected else ""
    )
    return (
        f"<p class='flag' data-flag='likelihood-displacement'><b>Likelihood displacement "
        f"({_e(found.kind)}):</b> the chosen responses' log-probability fell ({_e(found.key)} "
        f"{found.start:.3f} → {found.end:.3f}{rejected}) while the margin is optimised: probability "
        f"mass went to responses outside the pairs (Razin et al., 2024).</p>"
    )


def _evaluation_html(evaluation) -> str:
    rows = [
        [
            _td(m.task),
            _td(m.metric + ("" if m.higher_is_better else " (lower is better)")),
            _td(m.value, True),
            _td(f"[{_num(m.ci_low)}, {_num(m.ci_high)}]" if m.ci_low is not None else "–"),
            _td(m.stderr, True),
            _td(m.n),
        ]
        for m in evaluation.metrics
    ]
    table = _table(["task", "metric", "value", "95% CI (bootstrap)", "stderr", "n"], rows, "eval")
    samples = [
        [
            _td(s.task),
            _td(s.prompt, cls="text"),
            _td(s.output, cls="text"),
            _td(s.reference),
            _td(", ".join(f"{k}={_num(v)}" for k, v in s.scores.items())),
        ]
        for s in evaluation.samples
    ]
    shown = _table(["task", "prompt", "output", "reference", "scores"], samples, "samples") if samples else ""
    return f"<h3>Evaluation <span class='muted'>{_e(evaluation.path)}</span></h3>{table}" + (
        f"<details><summary>Samples ({len(samples)})</summary>{shown}</details>" if shown else ""
    )


def _rollouts_html(rows: list[dict]) -> str:
    cells = [
        [
            _td(r.get("batch")),
            _td(_conversation(r.get("prompt")), cls="text"),
            _td(r.get("completion"), cls="text"),
            _td(r.get("reference")),
            _td(r.get("reward"), True),
        ]
        for r in rows
    ]
    return "<h3>Latest rollouts (samples.jsonl)</h3>" + _table(
        ["batch", "prompt", "completion", "reference", "reward"], cells, "samples"
    )


def _conversation(prompt: Any) -> Any:
    """A chat prompt (a list of messages) as 'role: content' lines; anything else as it is."""
    if isinstance(prompt, list) and all(isinstance(m, dict) for m in prompt):
        return "\n".join(f"{m.get('role', '?')}: {m.get('content', '')}" for m in prompt)
    return prompt


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "link", "iframe", "img", "object", "embed"):
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if (
                name in ("src", "href", "xlink:href", "srcset", "data", "action", "poster")
                and value
                and not value.startswith("#")
            ):
                self.found.append(f"{tag} {name}={value}")
            elif name == "style" and value and "url(" in value and not re.search(r"url\(\s*#", value):
                self.found.append(f"{tag} style={value}")


def external_references(page: str) -> list[str]:
    """What in `page` a browser would fetch or run (tags and attributes pointing outside the page).
    The report must have none: it has to open offline and be safe to open from anyone."""
    parser = _References()
    parser.feed(page)
    return parser.found
