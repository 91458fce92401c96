"""Typed tool recipes: file + --set overrides validated as one Section, mistakes as one line."""

import pytest

from posttrain.config.base import Positive, Section
from posttrain.config.tool_recipe import load_tool_recipe
from posttrain.errors import UserError


class Demo(Section):
    out: str
    n: Positive = 2
    tags: list[str] = []


def test_defaults_plus_overrides_without_a_file():
    recipe = load_tool_recipe(Demo, None, ["out=a.jsonl", "tags=[x, y]"])
    assert (recipe.out, recipe.n, recipe.tags) == ("a.jsonl", 2, ["x", "y"])


def test_file_then_overrides(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("out: a.jsonl\nn: 5\n")
    assert load_tool_recipe(Demo, str(path), ["n=7"]).n == 7
    assert load_tool_recipe(Demo, str(path)).out == "a.jsonl"


@pytest.mark.parametrize(
    "text, overrides, message",
    [
        ("out: a\nn: 0\n", [], "n"),
        ("out: a\nbogus: 1\n", [], "unknown key 'bogus'"),
        ("n: 3\n", [], "out: Field required"),
        ("out: a\nout: b\n", [], "out"),
        ("- 1\n", [], "mapping"),
    ],
)
def test_mistakes_are_one_line_user_errors(tmp_path, text, overrides, message):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as err:
        load_tool_recipe(Demo, str(path), overrides)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_recipe_file(tmp_path):
    with pytest.raises(UserError, match="recipe file not found"):
        load_tool_recipe(Demo, str(tmp_path / "none.yaml"))
