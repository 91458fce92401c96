"""Our operators against mergekit's on the tiny model: max |diff| of every tensor. Skipped when
mergekit is not importable (it is optional: pip install mergekit)."""

import pytest

from posttrain.checkpoint.weights import read_state_dict
from posttrain.merging.recipe import MergeRecipe
from posttrain.merging.run import run_merge

mergekit = pytest.importorskip("mergekit", reason="mergekit not installed")

CASES = {
    "linear": (
        {"method": "linear", "models": [{"path": "a", "weight": 0.3}, {"path": "b", "weight": 0.7}]},
        {
            "merge_method": "linear",
            "parameters": {"normalize": True},
            "models": [{"model": "a", "parameters": {"weight": 0.3}}, {"model": "b", "parameters": {"weight": 0.7}}],
        },
    ),
    "task_arithmetic": (
        {
            "method": "task_arithmetic",
            "base": "base",
            "scale": 0.8,
            "models": [{"path": "a", "weight": 0.5}, {"path": "b", "weight": 1.0}],
        },
        {
            "merge_method": "task_arithmetic",
            "base_model": "base",
            "parameters": {"lambda": 0.8},
            "models": [{"model": "a", "parameters": {"weight": 0.5}}, {"model": "b", "parameters": {"weight": 1.0}}],
        },
    ),
    "ties": (
        {
            "method": "ties",
            "base": "base",
            "density": 0.4,
            "models": [{"path": "a", "weight": 0.6}, {"path": "b", "weight": 1.0}],
        },
        {
            "merge_method": "ties",
            "base_model": "base",
            "models": [
                {"model": "a", "parameters": {"weight": 0.6, "density": 0.4}},
                {"model": "b", "parameters": {"weight": 1.0, "density": 0.4}},
            ],
        },
    ),
    "slerp": (
        {"method": "slerp", "t": 0.3, "models": [{"path": "a"}, {"path": "b"}]},
        {
            "merge_method": "slerp",
            "base_model": "a",
            "parameters": {"t": 0.3},
            "models": [{"model": "a"}, {"model": "b"}],
        },
    ),
}


def _paths(node, family):
    if isinstance(node, dict):
        return {
            k: (str(family[v]) if k in ("path", "base", "model", "base_model") else _paths(v, family))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_paths(v, family) for v in node]
    return node


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_mergekit(name, family, tmp_path):
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions
    from mergekit.merge import run_merge as mergekit_merge

    ours_recipe, theirs = CASES[name]
    ours = read_state_dict(run_merge(MergeRecipe.model_validate(_paths(ours_recipe, family)), tmp_path / "ours"))
    config = MergeConfiguration.model_validate({**_paths(theirs, family), "dtype": "float32"})
    mergekit_merge(
        config, str(tmp_path / "theirs"), MergeOptions(copy_tokenizer=False, write_model_card=False, quiet=True)
    )
    reference = read_state_dict(tmp_path / "theirs")
    assert set(ours) == set(reference)
    worst = max((ours[k] - reference[k]).abs().max().item() for k in ours)
    assert worst < 1e-6, f"{name}: max |diff| {worst:.2e}"
