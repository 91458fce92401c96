"""`posttrain report RUN_DIR [RUN_DIR ...] --out report.html`: the runs' recipes, curves (overlaid
when there are several), evaluations with bootstrap intervals and `posttrain eval compare`'s
significance against the first evaluated run, throughput, memory and samples, in one HTML file
that opens offline.

Evaluations are found inside each run directory (any results.json outside checkpoints/, final/,
tb/); `--eval RUN_DIR=EVAL_DIR` attaches one kept elsewhere. A RUN_DIR may itself be an eval
output directory (e.g. the base model's evaluation, as the baseline).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from posttrain.errors import UserError


def add_parsers(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="an HTML report of runs: curves, evaluations, samples",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run or eval output directories")
    p.add_argument("--out", default="report.html", help="the HTML file to write (default report.html)")
    p.add_argument(
        "--eval",
        dest="evals",
        action="append",
        default=[],
        metavar="RUN_DIR=EVAL_DIR",
        help="attach an evaluation output directory to a run (repeatable)",
    )
    p.add_argument(
        "--label",
        dest="labels",
        action="append",
        default=[],
        metavar="RUN_DIR=NAME",
        help="a run's name in the report (default: its directory name)",
    )
    p.add_argument("--samples", type=int, default=5, help="samples shown per task and run (default 5)")
    p.add_argument("--title", default="posttrain report")
    p.set_defaults(tool_run=report_command)


def pairs_by_run(items: list[str], runs: list[str], option: str) -> dict[str, list[str]]:
    """'RUN_DIR=VALUE' items grouped by the run they name (as given on the command line)."""
    known = {str(Path(r)): r for r in runs}
    out: dict[str, list[str]] = {r: [] for r in runs}
    for item in items:
        run, sep, value = item.rpartition("=")
        if not sep or not run or not value:
            raise UserError(f"{option} {item!r}: expected RUN_DIR=VALUE")
        if str(Path(run)) not in known:
            raise UserError(f"{option} {item!r}: {run} is not one of the RUN_DIRs given")
        out[known[str(Path(run))]].append(value)
    return out


def report_command(args: argparse.Namespace) -> None:
    from posttrain.report import write_report
    from posttrain.report.collect import collect_run

    if args.samples < 0:
        raise UserError(f"--samples must be >= 0, got {args.samples}")
    evals = pairs_by_run(args.evals, args.runs, "--eval")
    labels = pairs_by_run(args.labels, args.runs, "--label")
    runs = [collect_run(r, labels[r][-1] if labels[r] else None, evals[r], args.samples) for r in args.runs]
    print(write_report(runs, args.out, args.title))
