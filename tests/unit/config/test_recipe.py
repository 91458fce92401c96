from pathlib import Path

import pytest

from posttrain.config.recipe import load_recipe
from posttrain.errors import UserError

# recipes/**/merge/ hold merge recipes (posttrain/merging/recipe.py; tests/unit/merging validates them)
RECIPES = sorted(p for p in (Path(__file__).parents[3] / "recipes").rglob("*.yaml") if "merge" not in p.parts)


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_every_shipped_recipe_validates(path):
    if path.stem == "iterate":  # `posttrain iterate`'s own schema (commands/iterate.py)
        from posttrain.commands.iterate import load_iterate_recipe

        load_iterate_recipe(str(path), [])
    elif path.stem == "prune":  # `posttrain prune`'s own schema (pruning/recipe.py)
        from posttrain.config.tool_recipe import load_tool_recipe
        from posttrain.pruning.recipe import PruneRecipe

        load_tool_recipe(PruneRecipe, str(path))
    else:
        load_recipe(path)


def test_unknown_key_names_the_nearest_valid_key():
    with pytest.raises(UserError, match=r"unknown key 'train.lrr' \(did you mean 'train.lr'\?\)"):
        load_recipe(None, ["train.lrr=0.1"])
    with pytest.raises(UserError, match=r"unknown key 'trian' \(did you mean 'train'\?\)"):
        load_recipe(None, ["trian.lr=0.1"])


def test_unknown_key_in_a_yaml_file_names_the_file(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: tiny\ntrain:\n  micro_batch: 4\n")
    with pytest.raises(UserError) as err:
        load_recipe(recipe)
    assert str(err.value).startswith(f"{recipe}: unknown key 'train.micro_batch'")
    assert "did you mean 'train.micro_batch_size'" in str(err.value)


def test_overrides_are_typed_and_dotted():
    recipe = load_recipe(
        None,
        [
            "train.lr=1e-4",
            "train.max_steps=7",
            "model=some/dir",
            "model.dtype=bfloat16",
            "data=[a.jsonl, b.jsonl]",
            "data.sources.1.weight=3",
            "train.betas=[0.9, 0.99]",
        ],
    )
    assert recipe.train.lr == pytest.approx(1e-4) and recipe.train.max_steps == 7
    assert recipe.model.path == "some/dir" and recipe.model.dtype == "bfloat16"
    assert [s.path for s in recipe.data.sources] == ["a.jsonl", "b.jsonl"]
    assert recipe.data.sources[1].weight == 3.0 and recipe.train.betas == (0.9, 0.99)


def test_bad_values_are_one_line_errors():
    with pytest.raises(UserError, match=r"train.lr: .*number.*\(got 'fast'\)"):
        load_recipe(None, ["train.lr=fast"])
    with pytest.raises(UserError, match="train.schedule: Input should be 'constant'"):
        load_recipe(None, ["train.schedule=cos"])
    with pytest.raises(UserError, match="expected key=value"):
        load_recipe(None, ["train.lr"])
    with pytest.raises(UserError, match="recipe file not found"):
        load_recipe("no/such/recipe.yaml")


def test_phases_must_name_known_sources():
    with pytest.raises(UserError, match="names source 'web'"):
        load_recipe(None, ["data=[books.jsonl]", "data.phases=[{steps: 5, weights: {web: 1}}]"])


def test_every_objective_hyperparameter_can_be_set_from_a_recipe():
    import dataclasses

    from posttrain.config.recipe import PreferenceSection
    from posttrain.objectives.preference import PreferenceConfig

    assert {f.name for f in dataclasses.fields(PreferenceConfig)} <= set(PreferenceSection.model_fields)


@pytest.mark.parametrize(
    "override,message",
    [
        (
            "grpo.advantage=rloo",
            "grpo: advantage rloo needs group_size >= 2 (each completion's baseline is its siblings' mean)",
        ),
        ("preference.rebel_eta=0", "preference.rebel_eta: Input should be greater than 0 (got 0)"),
        ("train.epochs=-1", "train.epochs: Input should be greater than or equal to 0 (got -1)"),
    ],
)
def test_ranges_and_cross_field_rules_name_the_key(override, message):
    with pytest.raises(UserError) as err:
        load_recipe(None, ["grpo.group_size=1", override])
    assert str(err.value) == f"recipe: {message}"


def test_duplicated_key_inside_a_list_item(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("data:\n  sources:\n    - path: a.jsonl\n      weight: 1\n      weight: 2\n")
    with pytest.raises(UserError, match=r"r.yaml: line 5: duplicated key 'weight' \(first at line 4\)"):
        load_recipe(recipe)
