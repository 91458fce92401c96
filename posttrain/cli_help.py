"""`posttrain --help`: the commands grouped by family, one line each, in the order of the
documentation site's navigation (mkdocs.yml: Train, Data, Model tools, Evaluate, Inspect).

A new command is listed in one family here; tests/unit/test_cli_help.py fails while one is not.
"""

from __future__ import annotations

import argparse
import textwrap

FAMILIES: dict[str, tuple[str, ...]] = {
    "train": ("pretrain", "sft", "dpo", "kto", "reward", "grpo", "refuel", "distill", "quickstart"),
    "data": ("synth", "curate", "sample", "serve", "score", "iterate", "data"),
    "model tools": (
        "merge",
        "cycleqd",
        "merge-lora",
        "quantize",
        "quantize-study",
        "prune",
        "surgery",
        "convert",
        "make-tiny",
    ),
    "evaluate": ("eval", "reward-eval", "generate", "kv", "rag"),
    "inspect": ("report", "analyze"),
}
WIDTH = 100  # one line per command, cut to this many characters


def family_listing(helps: dict[str, str]) -> str:
    """The epilog: each family's commands with their one-line help."""
    name_width = max(map(len, helps)) + 2
    lines = ["commands (posttrain COMMAND -h for its flags):"]
    for family, names in FAMILIES.items():
        lines.append(f"  {family}:")
        for name in names:
            text = textwrap.shorten(" ".join(helps.get(name, "").split()), WIDTH - name_width - 4, placeholder=" ...")
            lines.append(f"    {name.ljust(name_width)}{text}")
    return "\n".join(lines)


def group_commands(parser: argparse.ArgumentParser) -> None:
    """Replace argparse's flat list of sub-commands with the family listing."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help or "" for a in sub._choices_actions}
    sub.metavar, sub.help = "COMMAND", "one of the commands below"
    sub.command_helps = helps  # kept for the CLI reference (tools/gen_docs.py)
    sub._choices_actions.clear()  # the families below list them instead
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = family_listing(helps)
