"""Issue 30 item 1: commands that write a model directory (quantize, merge, merge-lora, surgery)
never delete what --out held unless it is their own earlier output or --overwrite is given, and
never write over or inside one of their inputs."""

import hashlib
import shutil

import pytest
import yaml

from posttrain.cli import main


def _digest(directory) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def model(tiny_dir, tmp_path_factory):
    """A private copy of the tiny model (tests try to overwrite it)."""
    return shutil.copytree(tiny_dir, tmp_path_factory.mktemp("input") / "model")


@pytest.fixture(scope="module")
def adapter(model, tmp_path_factory):
    from posttrain.checkpoint.io import save_final
    from posttrain.config.recipe import AdapterConfig, ModelConfig
    from posttrain.model.load import load_model, load_tokenizer

    lora = load_model(ModelConfig(path=str(model)), adapter=AdapterConfig(kind="lora", r=2))
    return save_final(tmp_path_factory.mktemp("adapter"), lora, load_tokenizer(str(model)))


def _argv(command: str, source, out, tmp_path) -> list[str]:
    """The command line of `command` reading `source` (a model or an adapter) and writing `out`."""
    if command == "quantize":
        return ["quantize", str(source), "--out", str(out)]
    if command == "merge":
        recipe = tmp_path / "merge.yaml"
        recipe.write_text(yaml.safe_dump({"method": "linear", "models": [str(source), str(source)]}))
        return ["merge", str(recipe), "--out", str(out)]
    if command == "merge-lora":
        return ["merge-lora", str(source), "--out", str(out)]
    return ["surgery", "expand", str(source), "--blocks", "0", "--out", str(out)]


COMMANDS = ["quantize", "merge", "merge-lora", "surgery"]


def _source(command, model, adapter):
    return adapter if command == "merge-lora" else model


def _fails(capsys, argv, *words) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert all(w in err for w in words), err


@pytest.mark.parametrize("command", COMMANDS)
def test_a_foreign_non_empty_out_is_refused_and_kept(command, model, adapter, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    _fails(capsys, _argv(command, _source(command, model, adapter), out, tmp_path), str(out), "--overwrite")
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]


@pytest.mark.parametrize("command", COMMANDS)
def test_out_equal_to_or_inside_an_input_is_refused(command, model, adapter, tmp_path, capsys):
    source = _source(command, model, adapter)
    before = _digest(source)
    for out in (source, source / "sub"):
        _fails(capsys, _argv(command, source, out, tmp_path) + ["--overwrite"], str(source), "input")
    assert _digest(source) == before


@pytest.mark.parametrize("command", COMMANDS)
def test_own_earlier_output_is_replaced_and_overwrite_replaces_a_foreign_one(command, model, adapter, tmp_path, capsys):
    source, out = _source(command, model, adapter), tmp_path / "out"
    argv = _argv(command, source, out, tmp_path)
    assert main(argv) == 0
    (out / "stale.txt").write_text("left by the earlier run")
    assert main(argv) == 0  # a rerun of the same command replaces its own output
    assert not (out / "stale.txt").exists() and (out / "config.json").is_file()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert main(_argv(command, source, other, tmp_path) + ["--overwrite"]) == 0
    assert not (other / "notes.txt").exists() and (other / "config.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]  # no temp sibling left
