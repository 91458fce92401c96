"""`mkdocs build --strict` of the documentation site: a broken internal link, a missing page or a
page left out of the nav fails the suite. Skipped only where mkdocs is not installed and CI is not
set (CI=true: a failure, as `make test` installs the dev extra, which holds mkdocs-material)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _mkdocs_or_skip() -> list[str]:
    try:
        import material  # noqa: F401  (the theme mkdocs.yml names)
        import mkdocs  # noqa: F401
    except ImportError as err:
        if os.environ.get("CI"):
            pytest.fail(f"mkdocs-material is not installed on CI ({err}): pip install -e '.[dev]'")
        pytest.skip(f"mkdocs-material not installed ({err}); pip install -e '.[docs]'")
    return [
        sys.executable,
        "-m",
        "mkdocs",
        "build",
        "--strict",
    ]  # not --quiet: it hides the warnings that --strict counts


def _build(root: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [*_mkdocs_or_skip(), "--config-file", str(root / "mkdocs.yml"), "--site-dir", str(site)],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
    )


def _copy_site_sources(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "docs", root / "docs")
    shutil.copy(ROOT / "mkdocs.yml", root / "mkdocs.yml")
    return root


def test_the_site_builds_strictly(tmp_path):
    result = _build(ROOT, tmp_path / "site")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "preference" / "index.html").is_file()
    assert (tmp_path / "site" / "reference" / "recipes" / "index.html").is_file()


@pytest.mark.parametrize(
    "damage, expected",
    [
        ("[the DPO page](no_such_page.md)", "no_such_page.md"),
        ("[a section](preference.md#no-such-heading)", "no-such-heading"),
    ],
)
def test_a_broken_link_fails_the_build(tmp_path, damage, expected):
    root = _copy_site_sources(tmp_path)
    page = root / "docs" / "curation.md"
    page.write_text(page.read_text() + f"\nSee {damage}.\n")
    result = _build(root, tmp_path / "site")
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr


def test_a_page_missing_from_the_nav_fails_the_build(tmp_path):
    root = _copy_site_sources(tmp_path)
    (root / "docs" / "orphan.md").write_text("# Orphan\n")
    result = _build(root, tmp_path / "site")
    assert result.returncode != 0 and "orphan.md" in result.stdout + result.stderr
