import pytest

from posttrain.config import Recipe, recipe_to_dict
from posttrain.errors import UserError
from posttrain.train.resume import check_output_dir, recipe_changes


def _recipe(**train):
    return recipe_to_dict(Recipe.model_validate({"data": ["a.jsonl"], "train": train}))


def test_unchanged_recipe_has_no_changes():
    assert recipe_changes(_recipe(lr=1e-3), _recipe(lr=1e-3)) == ([], [])


def test_exactness_breaking_changes_are_refused_and_the_rest_applied():
    old = _recipe(lr=1e-3, micro_batch_size=4, max_steps=8)
    new = _recipe(lr=5e-4, micro_batch_size=2, max_steps=12)
    new["seed"], new["data"]["sources"][0]["path"] = 1, "b.jsonl"
    refused, applied = recipe_changes(old, new)
    assert refused == ["data.sources: [{'path': 'a.jsonl', 'kind': 'auto', 'name': None, 'weight': 1.0, "
                       "'split': None, 'columns': {}}] -> [{'path': 'b.jsonl', 'kind': 'auto', 'name': None, "
                       "'weight': 1.0, 'split': None, 'columns': {}}]",
                       "seed: 0 -> 1", "train.micro_batch_size: 4 -> 2"]
    assert applied == ["train.lr: 0.001 -> 0.0005", "train.max_steps: 8 -> 12"]


def test_keys_missing_from_an_older_checkpoint_are_not_changes():
    old, new = _recipe(), _recipe()
    del old["train"]["on_nonfinite"]
    new["train"]["on_nonfinite"] = "skip"
    assert recipe_changes(old, new) == ([], [])


def test_output_dir_spelling_is_ignored():
    old, new = _recipe(), _recipe()
    old["output_dir"], new["output_dir"] = "runs/x", "/abs/runs/x"
    assert recipe_changes(old, new) == ([], [])


def test_resume_of_a_finished_run_without_checkpoint_is_refused(tmp_path):
    (tmp_path / "final").mkdir()
    (tmp_path / "metrics.jsonl").write_text("")
    with pytest.raises(UserError, match="finished run .* no checkpoint"):
        check_output_dir(tmp_path, True, _recipe())
    assert check_output_dir(tmp_path / "fresh", True, _recipe()) is None  # nothing yet: a fresh start
