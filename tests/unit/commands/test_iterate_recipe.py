"""`posttrain iterate` recipes are read like every other recipe: strict YAML and ranged values."""

import pytest

from posttrain.commands.iterate import load_iterate_recipe
from posttrain.errors import UserError


@pytest.mark.parametrize(
    "text, message",
    [
        ("model: a\nprompts: b\nrounds: 1\nrounds: 2\n", "line 4: duplicated key 'rounds' (first at line 3)"),
        ("model: a\nprompts: b\nsample: {n: 0}\n", "sample.n: Input should be greater than 0"),
        ("model: a\nprompts: b\nsample: {top_p: 1.5}\n", "sample.top_p"),
    ],
)
def test_bad_iterate_recipes_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "iterate.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as err:
        load_iterate_recipe(str(path), [])
    assert message in str(err.value) and "\n" not in str(err.value)
