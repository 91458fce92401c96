import pytest

from posttrain.config.recipe import Recipe, recipe_to_dict
from posttrain.errors import UserError
from posttrain.train.resume import (
    check_output_dir,
    check_recipe_changes,
    recipe_changes,
)


def _recipe(**train):
    return recipe_to_dict(Recipe.model_validate({"data": ["a.jsonl"], "train": train}))


def test_unchanged_recipe_has_no_changes():
    assert recipe_changes(_recipe(lr=1e-3), _recipe(lr=1e-3)) == ([], [])


def test_exactness_breaking_changes_are_refused_and_the_rest_applied():
    old = _recipe(lr=1e-3, micro_batch_size=4, max_steps=8)
    new = _recipe(lr=5e-4, micro_batch_size=2, max_steps=12)
    new["seed"], new["data"]["sources"][0]["path"] = 1, "b.jsonl"
    refused, applied = recipe_changes(old, new)
    assert refused == [
        "data.sources: [{'path': 'a.jsonl', 'kind': 'auto', 'name': None, 'weight': 1.0, "
        "'split': None, 'columns': {}}] -> [{'path': 'b.jsonl', 'kind': 'auto', 'name': None, "
        "'weight': 1.0, 'split': None, 'columns': {}}]",
        "seed: 0 -> 1",
    ]
    assert applied == ["train.lr: 0.001 -> 0.0005", "train.max_steps: 8 -> 12", "train.micro_batch_size: 4 -> 2"]


def test_the_global_batch_must_hold_across_process_counts(tmp_path):
    """2 processes x 2 = 1 process x 4 (a checkpoint moves between process counts); x 2 is refused."""
    old = _recipe(micro_batch_size=2, grad_accum_steps=2)
    check_recipe_changes(old, _recipe(micro_batch_size=4, grad_accum_steps=2), tmp_path, 2, 1)
    check_recipe_changes(old, _recipe(micro_batch_size=1, grad_accum_steps=4), tmp_path, 2, 2)
    with pytest.raises(
        UserError,
        match=r"global batch \(micro_batch_size x grad_accum_steps x processes\): "
        r"2x2x2=8 -> 2x2x1=4",
    ):
        check_recipe_changes(old, old, tmp_path, 2, 1)


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
