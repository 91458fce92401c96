"""What the documentation shows exists: every `posttrain` command in a ```bash block of README.md,
docs/ and the recipes' headers parses (argparse, not run); the `--set` keys of recipe commands,
the recipe keys and flags named in prose and every repository file named exist. A page that names
something that does not exist fails with the page and line."""

from pathlib import Path

import pytest

from tests.unit.docs.tools_loader import load

check = load("docs_check")


def test_every_page_names_only_what_exists():
    problems = [p for page in check.pages() for p in check.check_page(page)]
    assert not problems, "\n".join(problems)


def test_the_commands_cover_every_page_with_a_bash_block():
    """The walk finds the commands: README's first-use block and the family pages' examples."""
    commands = {
        page.name: [argv for _, text in check.shell_commands(page) if (argv := check.command_tokens(text)) is not None]
        for page in check.pages()
    }
    assert ["dpo", "recipes/tiny/dpo.yaml"] in commands["preference.md"]
    assert any(argv[:2] == ["merge", "recipes/tiny/merge/ties.yaml"] for argv in commands["merging.md"])
    assert any(argv[:2] == ["curate", "dedup"] for argv in commands["curation.md"])
    assert any(argv[0] == "sft" for argv in commands["README.md"])
    assert any(argv[:2] == ["synth", "toy-tasks"] for argv in commands["ties.yaml"])


def _page(tmp_path: Path, text: str) -> list[str]:
    page = tmp_path / "page.md"
    page.write_text(text)
    return check.check_page(page)


@pytest.mark.parametrize(
    "block, expected",
    [
        ("posttrain sft recipes/tiny/sft.yaml --set train.lrr=1e-3", "page.md:4: unknown recipe key 'train.lrr'"),
        (
            "posttrain sft recipes/tiny/sft.yaml --no-such-flag",
            "page.md:4: `posttrain sft recipes/tiny/sft.yaml --no-such-flag` does not parse",
        ),
        ("posttrain dpoo recipes/tiny/dpo.yaml", "page.md:4: `posttrain dpoo"),
        ("posttrain synth magpie --set n_rowz=10 --out x.jsonl", "page.md:4: unknown recipe key 'n_rowz'"),
        ("posttrain sample M --prompts p.jsonl --out o.jsonl [--backend hf|vllm|nope]", "invalid choice: 'nope'"),
        (
            "posttrain eval M --tasks a \\\n    [--samples 8 | --no-such 3]\nposttrain kv eval M --bogus 1",
            "page.md:6: `posttrain kv eval M --bogus 1`",
        ),
    ],
)
def test_a_bash_block_naming_what_does_not_exist_fails_with_page_and_line(tmp_path, block, expected):
    problems = _page(tmp_path, f"# Page\n\n```bash\n{block}\n```\n")
    assert any(p.startswith(expected) or expected in p for p in problems), problems


@pytest.mark.parametrize(
    "line, expected",
    [
        ("Set `train.lrr` to change the rate.", "page.md:3: unknown recipe key 'train.lrr'"),
        ("Set `grpo.algorithm: ppoo`; also `preference.nope=1`.", "page.md:3: unknown recipe key 'preference.nope'"),
        ("Pass `--samplez 8` to eval.", "page.md:3: unknown flag '--samplez'"),
        ("Run `posttrain curate dedupe` first.", "page.md:3: unknown command 'posttrain curate dedupe'"),
        ("See `recipes/tiny/nope.yaml`.", "page.md:3: no such file 'recipes/tiny/nope.yaml'"),
        ("As bench/no_such_bench.py measures.", "page.md:3: no such file 'bench/no_such_bench.py'"),
        ("The [DPO page](docs/no_such_page.md).", "page.md:3: no such file 'docs/no_such_page.md'"),
    ],
)
def test_prose_naming_what_does_not_exist_fails_with_page_and_line(tmp_path, line, expected):
    problems = _page(tmp_path, f"# Page\n\n{line}\n")
    assert any(p.endswith(expected) for p in problems), problems


def test_prose_naming_what_exists_passes(tmp_path):
    text = (
        "# Page\n\nSet `train.lr`, `data.sources.0.path=x.jsonl`, `grpo.algorithm: ppo`, pass `--samples 8`, "
        "run `posttrain curate dedup` with `recipes/tiny/sft.yaml` or `tests/unit/objectives/test_shared_prefix*.py`; "
        "`data.jsonl` is a file, not a key.\n\n```bash\ngit clone URL posttrain && cd posttrain\n"
        "posttrain merge recipes/tiny/merge/ties.yaml   # a comment\n```\n"
    )
    assert _page(tmp_path, text) == []


def test_a_recipe_header_command_is_checked(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "# Inputs (prose with posttrain in it is not a command):\n"
        "#   posttrain synth toy-tasks --outt data/toy\n"
        "# Then: posttrain sft r.yaml --set train.max_stepz=2\nmodel: tiny\n# posttrain dpoo\n"
    )
    problems = check.check_page(recipe)
    assert len(problems) == 2, problems
    assert problems[0].startswith(f"{recipe}:2: `posttrain synth toy-tasks --outt data/toy` does not parse")
    assert problems[1] == f"{recipe}:3: unknown recipe key 'train.max_stepz'"
