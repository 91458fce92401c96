"""`posttrain --help` lists every command once, grouped by family in the docs navigation's order."""

import contextlib
import io
from pathlib import Path

import pytest
import yaml

from posttrain.cli import build_parser
from posttrain.cli_help import FAMILIES

ROOT = Path(__file__).resolve().parents[2]


def _help() -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    return out.getvalue()


def _commands() -> set[str]:
    parser = build_parser()
    return set(next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices)


def test_every_command_is_in_exactly_one_family():
    listed = [name for names in FAMILIES.values() for name in names]
    assert len(listed) == len(set(listed)), "a command is in two families"
    assert set(listed) == _commands()


def test_help_groups_the_commands_one_line_each():
    text = _help()
    lines = text.splitlines()
    start = lines.index("commands (posttrain COMMAND -h for its flags):")
    family, seen = None, {}
    for line in lines[start + 1 :]:
        if line.startswith("  ") and not line.startswith("    "):
            family = line.strip().rstrip(":")
            continue
        name = line.split()[0]
        seen[name] = family
        assert len(line) <= 100
    assert seen == {name: fam for fam, names in FAMILIES.items() for name in names}
    assert "    dpo             preference optimisation on chosen/rejected pairs (DPO, SimPO, ...)" in lines


def test_families_follow_the_docs_navigation():
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    sections = [next(iter(item)).lower() for item in nav if isinstance(next(iter(item.values())), list)]
    assert [s for s in sections if s in FAMILIES] == list(FAMILIES)
    assert set(FAMILIES) <= set(sections)


def test_an_unknown_command_is_still_one_line():
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["nope"])
    assert stop.value.code == 2 and len(err.getvalue().strip().splitlines()) == 1
