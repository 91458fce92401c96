"""`posttrain report`: one self-contained HTML page per set of runs (collect.py reads the run
directories, charts.py draws the curves as static SVG, html.py lays out the page, cli.py is the
command). Not to be confused with eval/report.py, which writes an evaluation's results.json."""

from __future__ import annotations

import os
from pathlib import Path


def write_report(runs, out: str | Path, title: str = "posttrain report") -> Path:
    """Render `runs` (collect.Run) to `out`, atomically (temp file + rename)."""
    from posttrain.report.html import render_report

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(render_report(list(runs), title), encoding="utf-8")
    os.replace(tmp, out)
    return out
