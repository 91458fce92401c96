"""`posttrain merge`: recipes end to end on tiny models, and bad input as one line with exit 2."""

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM

from posttrain.checkpoint.weights import read_state_dict, write_model_dir
from posttrain.cli import main
from posttrain.merging.recipe import CycleQDRecipe, MergeRecipe, load_yaml_recipe


def write_recipe(path, **recipe):
    path.write_text(yaml.safe_dump(recipe))
    return path


def merge(tmp_path, capsys, **recipe):
    code = main(["merge", str(write_recipe(tmp_path / "merge.yaml", **recipe)), "--out", str(tmp_path / "out")])
    return code, capsys.readouterr().err.strip()


def test_dare_ties_merge_loads_in_transformers_and_is_reproducible(family, tmp_path, capsys):
    recipe = dict(
        method="dare",
        dare_combine="ties",
        base=str(family["base"]),
        density=0.5,
        seed=7,
        models=[str(family["a"]), str(family["b"])],
    )
    assert merge(tmp_path, capsys, **recipe) == (0, "")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert model(torch.tensor([[1, 2, 3]])).logits.isfinite().all()
    first = read_state_dict(tmp_path / "out")
    assert merge(tmp_path, capsys, **recipe)[0] == 0
    again = read_state_dict(tmp_path / "out")
    assert all(torch.equal(first[k], again[k]) for k in first)
    base = read_state_dict(family["base"])
    assert any(not torch.equal(first[k], base[k]) for k in first)


def test_checkpoint_soup_averages_a_runs_checkpoints(family, tmp_path, capsys):
    run = tmp_path / "run" / "checkpoints"
    for step, name in [(1, "a"), (2, "b")]:
        shutil.copytree(family[name], run / f"step-{step:08d}")
        for f in ("trainer_state.json", "optim.pt"):  # what makes a checkpoint complete
            (run / f"step-{step:08d}" / f).write_text("{}")
    assert merge(tmp_path, capsys, method="checkpoint_soup", run_dir=str(tmp_path / "run"))[0] == 0
    soup, a, b = (read_state_dict(p) for p in (tmp_path / "out", family["a"], family["b"]))
    assert all(torch.allclose(soup[k], (a[k] + b[k]) / 2) for k in soup)


def test_missing_base_is_one_line(family, tmp_path, capsys):
    code, err = merge(tmp_path, capsys, method="task_arithmetic", models=[str(family["a"])])
    assert code == 2 and "needs a base model" in err and len(err.splitlines()) == 1


def test_unknown_key_names_the_nearest(family, tmp_path, capsys):
    code, err = merge(tmp_path, capsys, method="ties", base=str(family["base"]), models=[str(family["a"])], densty=0.5)
    assert code == 2 and "did you mean 'density'" in err


def test_shape_mismatch_is_one_line(family, tmp_path, capsys):
    state = read_state_dict(family["a"])
    name = next(k for k in state if k.endswith("q_proj.weight"))
    state[name] = state[name][:-1]
    odd = write_model_dir(state, family["a"], tmp_path / "odd")
    code, err = merge(tmp_path, capsys, method="linear", models=[str(family["a"]), str(odd)])
    assert code == 2 and name in err and "shapes differ" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_tokenizer_mismatch_is_one_line(family, tmp_path, capsys):
    other = shutil.copytree(family["b"], tmp_path / "other-tok")
    tok = json.loads((other / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    first, second = [t for t in vocab if not t.startswith("<|")][:2]
    vocab[first], vocab[second] = vocab[second], vocab[first]
    (other / "tokenizer.json").write_text(json.dumps(tok))
    code, err = merge(tmp_path, capsys, method="linear", models=[str(family["a"]), str(other)])
    assert code == 2 and "tokenizer differs" in err and len(err.splitlines()) == 1


def test_architecture_mismatch_is_one_line(family, tmp_path, capsys):
    other = shutil.copytree(family["b"], tmp_path / "other-arch")
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(
        json.dumps({**config, "model_type": "mistral", "architectures": ["MistralForCausalLM"]})
    )
    code, err = merge(tmp_path, capsys, method="slerp", models=[str(family["a"]), str(other)])
    assert code == 2 and "model_type" in err


@pytest.mark.parametrize("bad, problem", [({"density": 1.5}, "[0, 1]"), ({"method": "slerp"}, "exactly 2")])
def test_recipe_values_are_checked_before_loading(family, tmp_path, capsys, bad, problem):
    recipe = {"method": "ties", "base": str(family["base"]), "models": [str(family["a"])], **bad}
    code, err = merge(tmp_path, capsys, **recipe)
    assert code == 2 and problem in err


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parents[3] / "recipes").rglob("merge/*.yaml")), ids=lambda p: p.name
)
def test_every_shipped_merge_recipe_validates(path):
    schema = CycleQDRecipe if "experts" in yaml.safe_load(path.read_text()) else MergeRecipe
    assert load_yaml_recipe(path, schema).output
