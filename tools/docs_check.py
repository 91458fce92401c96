"""Checks that what the documentation shows exists: every `posttrain` command in a fenced ```bash
block (and in a recipe's header) parses with posttrain's argparse parser, without running; every
`--set KEY` of a recipe command, every recipe key named in prose (`train.lr`), every flag named in
prose (`--samples`) and every repository path named (`recipes/tiny/sft.yaml`) exists.

Each problem is one string "PAGE:LINE: what is wrong". tests/unit/docs/test_docs_commands.py runs
these over README.md, docs/ and recipes/; `python tools/docs_check.py` prints them. Outside the
package's layers (it imports posttrain, nothing imports it).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
import sys
from functools import lru_cache
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_docs  # noqa: E402  (same folder: the schema walk is shared)

ROOT = gen_docs.ROOT
TRAIN_COMMANDS = ("pretrain", "sft", "dpo", "kto", "reward", "grpo", "distill", "refuel")
# Flags of other programs that the pages name (torchrun, accelerate, the bench scripts, pytest).
EXTERNAL_FLAGS = {
    "--nnodes",
    "--node-rank",
    "--rdzv-endpoint",
    "--config_file",
    "--machine_rank",
    "--steps",
    "--warmup",
    "--vocab",
    "--json",
    "--workdir",
    "--quickstart",
    "--frameworks",
    "--chunk-size",
    "--strict",
    "--check",
    "--sentence-questions",
    "--oracle-questions",
}
PATH_PATTERN = re.compile(r"(?<![\w/.-])((?:recipes|bench|tests|posttrain|examples|configs|tools|docs)/[\w./*-]*\w)")
FILE_SUFFIXES = {"jsonl", "json", "yaml", "py", "txt", "md", "tar", "parquet", "gz", "csv", "safetensors"}
CODE_SPAN = re.compile(r"`([^`\n]+)`")


@lru_cache(maxsize=1)
def parser() -> argparse.ArgumentParser:
    from posttrain.cli import build_parser

    return build_parser()


def _choices(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


@lru_cache(maxsize=1)
def all_flags() -> frozenset[str]:
    flags, stack = set(), [parser()]
    while stack:
        p = stack.pop()
        for action in p._actions:
            flags.update(action.option_strings)
        stack += _choices(p).values()
    return frozenset(flags)


# ----- commands -------------------------------------------------------------------------------


def command_tokens(text: str) -> list[str] | None:
    """The argv of the `posttrain ...` command in one shell line, with the docs' notation removed:
    `[--flag X]` optional groups are kept without brackets, `a | b` alternatives inside a group
    keep the first, `...` is dropped, and a shell pipe or `;` ends the command."""
    try:
        tokens = shlex.split(text, comments=True)
    except ValueError as err:
        raise ValueError(f"not a shell line ({err})") from None
    starts = [
        i
        for i, token in enumerate(tokens)
        if token == "posttrain" and all(t in (";", "&&", "||", "|") or re.fullmatch(r"\w+=\S*", t) for t in tokens[:i])
    ]
    if not starts:
        return None  # no command here, or `posttrain` is an argument of another one (`cd posttrain`)
    tokens = tokens[starts[0] :]
    argv, depth, skipping = [], 0, False
    for token in tokens:
        if token in (";", "&&", "||") or (token == "|" and depth == 0):
            break
        opened = 0
        while token.startswith("[") and (len(token) == 1 or token[1] in "-[" or token[1].isupper()):
            token, opened = token[1:], opened + 1
        depth += opened
        closed = 0
        while depth > 0 and token.endswith("]") and token.count("[") < token.count("]"):
            token, closed = token[:-1], closed + 1
        if token == "|":
            skipping = True
        elif token and token != "..." and not skipping:
            argv.append(token)
        depth -= closed
        if closed:
            skipping = False
    return argv[1:]


def parse_error(argv: list[str]) -> str | None:
    """argparse's message when argv does not parse, else None."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            parser().parse_args(argv)
    except SystemExit as stop:
        if stop.code not in (0, None):
            return err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else f"exit {stop.code}"
    return None


def recipe_class(argv: list[str]):
    """The recipe schema a command's `--set` keys belong to, or None when --set is not a recipe key."""
    if not argv:
        return None
    if argv[0] in TRAIN_COMMANDS:
        return gen_docs._training_recipe()
    sub = _choices(parser()).get(argv[0])
    if sub is not None and len(argv) > 1 and argv[1] in _choices(sub):
        run = _choices(sub)[argv[1]].get_default("tool_run")
        for cell in getattr(run, "__closure__", None) or ():
            recipe = getattr(cell.cell_contents, "Recipe", None)
            if recipe is not None:
                return recipe
    return None


def key_error(section, key: str) -> str | None:
    """None when the dotted key (list indices as numbers) names a field of the schema."""
    current = [section]
    parts = key.split(".")
    for i, part in enumerate(parts):
        if part.isdigit() and i:
            continue
        fields = {name: f for cls in current for name, f in cls.model_fields.items()}
        if part not in fields:
            return f"unknown recipe key '{key}'"
        annotation = fields[part].annotation
        current = gen_docs._sections_in(annotation)
        if not current:
            rest = parts[i + 1 :]
            if rest and "dict" not in str(annotation) and "Any" not in str(annotation):
                return f"unknown recipe key '{key}' ('{part}' has no keys)"
            return None
    return None


def alternatives(argv: list[str]) -> list[list[str]]:
    """argv once per alternative of each `a|b|c` value (the docs' notation for a choice)."""
    variants = [[t.split("|")[0] if _is_choice(t) else t for t in argv]]
    for i, token in enumerate(argv):
        if _is_choice(token):
            variants += [[*variants[0][:i], option, *variants[0][i + 1 :]] for option in token.split("|")[1:]]
    return variants


def _is_choice(token: str) -> bool:
    return "|" in token and "=" not in token and " " not in token


def check_command(argv: list[str]) -> list[str]:
    problems = []
    for variant in alternatives(argv):
        message = parse_error(variant)
        if message:
            problems.append(f"`posttrain {' '.join(variant)}` does not parse: {message}")
    section = recipe_class(argv)
    if section is not None:
        for i, token in enumerate(argv[:-1]):
            if token == "--set" and "=" in argv[i + 1]:
                problem = key_error(section, argv[i + 1].split("=", 1)[0])
                if problem:
                    problems.append(problem)
    return problems


def shell_commands(path: Path) -> list[tuple[int, str]]:
    """(line, text) of each shell line: ```bash blocks in Markdown, comment lines of a YAML header.
    A line ending in a backslash continues on the next."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found, in_bash = [], path.suffix != ".md"
    start, pending = 0, ""
    for number, line in enumerate(lines, 1):
        if path.suffix == ".md" and line.strip().startswith("```"):
            in_bash = line.strip() in ("```bash", "```sh") and not in_bash
            continue
        if path.suffix != ".md":
            if not line.startswith("#"):
                break  # the header ends at the first recipe line
            if not pending:
                # a command starts a header line (after a label such as "Then:") or follows a ";";
                # a `posttrain X` inside prose is not one
                match = re.search(r"(?:^#\s*(?:[A-Z][a-z]+:\s*)?|;\s*)(posttrain\s.*)", line)
                if not match:
                    continue
                line = re.split(r";\s+(?!posttrain\b)", match.group(1))[0]  # "...; teacher: the SFT model"
            else:
                line = line.lstrip("#")
        if not in_bash:
            continue
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        text, pending = pending + line, ""
        for part in re.split(r";\s+(?=posttrain\b)", text):
            if re.search(r"(^|\s)posttrain\s", part):
                found.append((start, part))
    return found


# ----- prose ----------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _section_keys() -> frozenset[str]:
    recipe = gen_docs._training_recipe()
    return frozenset(name for name, f in recipe.model_fields.items() if gen_docs._sections_in(f.annotation))


def prose_problems(line: str) -> list[str]:
    """Recipe keys, flags and `posttrain X` commands named in a line's code spans."""
    problems = []
    for span in CODE_SPAN.findall(line):
        word = span.split()[0] if span.split() else ""
        key = re.split(r"[:=\s]", span, maxsplit=1)[0]
        if (
            re.fullmatch(r"[a-z_]+(\.[a-z_0-9]+)+", key)
            and key.split(".")[0] in _section_keys()
            and key.rsplit(".", 1)[-1] not in FILE_SUFFIXES
        ):
            problem = key_error(gen_docs._training_recipe(), key)
            if problem:
                problems.append(problem)
        if re.fullmatch(r"--[a-z][a-z0-9_-]*", word.split("=")[0]):
            flag = word.split("=")[0]
            if flag not in all_flags() and flag not in EXTERNAL_FLAGS:
                problems.append(f"unknown flag '{flag}'")
        if word == "posttrain" and len(span.split()) > 1:
            problems += _subcommand_problem(span.split()[1:])
    return problems


def _subcommand_problem(words: list[str]) -> list[str]:
    current, path = parser(), "posttrain"
    for word in words:
        choices = _choices(current)
        if not choices or not re.fullmatch(r"[a-z][a-z0-9_-]*", word):
            return []
        if word not in choices:
            return [f"unknown command '{path} {word}'"]
        current, path = choices[word], f"{path} {word}"
    return []


def path_problems(line: str) -> list[str]:
    problems = []
    for match in PATH_PATTERN.findall(line):
        if "." not in match.rsplit("/", 1)[-1]:
            continue  # a folder or a phrase ("posttrain/TRL"), not a file
        if not list(ROOT.glob(match)):
            problems.append(f"no such file '{match}'")
    return problems


def check_page(path: Path) -> list[str]:
    """Every problem of one Markdown page or recipe file, as 'PAGE:LINE: problem'."""
    label = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    problems = []
    for number, text in shell_commands(path):
        try:
            argv = command_tokens(text)
        except ValueError as err:
            problems.append(f"{label}:{number}: {err}")
            continue
        if argv is not None:
            problems += [f"{label}:{number}: {p}" for p in check_command(argv)]
    if path.suffix == ".md":
        in_code = False
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip().startswith("```"):
                in_code = not in_code
            found = path_problems(line) + ([] if in_code else prose_problems(line))
            problems += [f"{label}:{number}: {p}" for p in found]
    return problems


def pages() -> list[Path]:
    """README, every docs page except the generated references, every recipe."""
    docs = [p for p in sorted((ROOT / "docs").rglob("*.md")) if "reference" not in p.parts]
    return [ROOT / "README.md", *docs, *sorted((ROOT / "recipes").rglob("*.yaml"))]


def main() -> int:
    problems = [p for page in pages() for p in check_page(page)]
    print("\n".join(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
