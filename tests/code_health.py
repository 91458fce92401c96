"""The checks of the code's shape that the suite runs (tests/test_code_health.py) and `make lint`
runs by hand: import layers and circles (import-linter), ruff lint and format, mypy against a
baseline that only shrinks, and no package file over 400 lines.

    python -m tests.code_health --write-mypy-baseline   # after fixing type errors: record the smaller set
"""

from __future__ import annotations

import collections
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "mypy-baseline.txt"
MAX_LINES = 400
_LOCATION = re.compile(r"^(?P<path>[^:]+):\d+(:\d+)?: (?P<rest>.*)$")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True)


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)


def mypy_errors() -> collections.Counter:
    """Today's mypy errors without line numbers (an edit above an old error must not look like a
    new one), counted: 'path: error: message [code]' -> how many times."""
    proc = run("mypy", "posttrain", "--no-error-summary", "--hide-error-context", "--no-pretty")
    if proc.returncode not in (0, 1) or "error:" not in proc.stdout and proc.returncode == 1:
        raise RuntimeError(f"mypy did not run: {proc.stderr[-2000:]}")
    errors: collections.Counter = collections.Counter()
    for line in proc.stdout.splitlines():
        match = _LOCATION.match(line)
        if match and ": error: " in f": {match['rest']}":
            errors[f"{match['path']}: {match['rest']}"] += 1
    return errors


def read_baseline() -> collections.Counter:
    lines = [line for line in BASELINE.read_text().splitlines() if line and not line.startswith("#")]
    return collections.Counter(lines)


def write_baseline(errors: collections.Counter) -> None:
    header = "# mypy errors accepted today (tests/code_health.py); this file may only shrink\n"
    BASELINE.write_text(header + "".join(f"{e}\n" for e in sorted(errors.elements())))


def long_files() -> list[str]:
    return [
        f"{p.relative_to(ROOT)} ({n} lines)"
        for p in sorted((ROOT / "posttrain").rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    ]


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-mypy-baseline"]:
        write_baseline(mypy_errors())
        print(f"wrote {BASELINE}")
    else:
        sys.exit(__doc__)
