"""The package's shape, checked by the suite: layers and no import circle, lint, format, types,
file size. What each check means and how to fix a failure is in docs/architecture.md."""

import pytest

from tests.code_health import MAX_LINES, long_files, mypy_errors, read_baseline, run, run_python


def test_import_layers_and_no_circle():
    """pyproject.toml [tool.importlinter]: each layer imports only from below, function-level
    imports included, and no package's modules import each other in a circle."""
    proc = run_python("import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_ruff_lint():
    proc = run("ruff", "check", "--output-format", "concise", ".")
    assert proc.returncode == 0, f"ruff check (fix with `ruff check --fix .`):\n{proc.stdout[-4000:]}"


def test_ruff_format():
    proc = run("ruff", "format", "--check", ".")
    assert proc.returncode == 0, f"not formatted (run `ruff format .`):\n{proc.stdout[-4000:]}"


def test_no_package_file_over_the_limit():
    assert long_files() == [], f"split these by concept (at most {MAX_LINES} lines a file)"


@pytest.mark.slow
def test_types_only_get_better():
    """mypy on the package: no error that mypy-baseline.txt does not hold, and the baseline holds
    no error that is gone (record the smaller set with `python -m tests.code_health --write-mypy-baseline`)."""
    now, baseline = mypy_errors(), read_baseline()
    new = now - baseline
    assert not new, "new type errors:\n" + "\n".join(sorted(new.elements()))
    fixed = baseline - now
    assert not fixed, (
        "fixed, so shrink the baseline (python -m tests.code_health --write-mypy-baseline):\n"
        + "\n".join(sorted(fixed.elements()))
    )
