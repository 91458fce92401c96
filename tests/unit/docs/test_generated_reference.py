"""docs/reference/recipes.md and cli.md are generated from the pydantic schemas and the argparse
parsers; a page that differs from what the generator writes now fails, naming the command that
regenerates it."""

import typing

from tests.unit.docs.tools_loader import load

gen = load("gen_docs")


def test_the_generated_references_are_current():
    stale = gen.stale_pages()
    assert not stale, f"stale: {[str(p.relative_to(gen.ROOT)) for p in stale]}; run `{gen.REGENERATE}`"


def test_every_recipe_key_is_in_the_recipe_reference():
    """Walked from the top-level recipe: every field of every nested section, with its default and range."""
    from posttrain.config.recipe import Recipe

    page = gen.RECIPES_PAGE.read_text()

    def keys(cls, prefix=""):
        for name, field in cls.model_fields.items():
            yield f"{prefix}{name}"
            is_list = typing.get_origin(field.annotation) is list
            for sub in gen._sections_in(field.annotation):
                yield from keys(sub, f"{prefix}{name}[]." if is_list else f"{prefix}{name}.")

    missing = [k for k in keys(Recipe) if f"| `{k}` |" not in page]
    assert not missing
    assert "| `train.micro_batch_size` | int | 8 | > 0 |" in page
    assert "| `train.betas` | tuple[float, float] | (0.9, 0.95) | each >= 0, &lt; 1 |" in page
    assert "| `data.sources[].path` | str | required |" in page


def test_every_command_and_flag_is_in_the_cli_reference():
    from posttrain.cli import build_parser

    page = gen.CLI_PAGE.read_text()
    stack = [("posttrain", build_parser())]
    while stack:
        path, parser = stack.pop()
        for name, _, sub in gen._subparsers(parser):
            assert f"## `{path} {name}`" in page
            for action in sub._actions:
                for flag in action.option_strings:
                    if flag not in ("-h", "--help") and action.help != "==SUPPRESS==":
                        assert f"`{flag}" in page or f", {flag}" in page, (path, name, flag)
            stack.append((f"{path} {name}", sub))


def test_a_stale_page_is_reported(tmp_path, monkeypatch):
    page = tmp_path / "cli.md"
    page.write_text(gen.cli_page().replace("--resume", "--resum"))
    monkeypatch.setattr(gen, "CLI_PAGE", page)
    monkeypatch.setattr(gen, "RECIPES_PAGE", gen.RECIPES_PAGE)
    assert gen.stale_pages() == [page]
