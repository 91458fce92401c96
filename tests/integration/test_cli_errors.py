"""A user's mistake is one line on stderr and exit status 2, never a traceback."""

import pytest

from posttrain.cli import main
from tests.integration.conftest import write_jsonl


def _fails_with(capsys, argv, *fragments):
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert err.startswith("posttrain: error: ")
    for fragment in fragments:
        assert fragment in err, err
    assert len(err.splitlines()) == 1, err


@pytest.fixture
def recipe(tmp_path, tiny_dir, small_data):
    def make(body: str = "", data: str | None = None):
        path = tmp_path / "r.yaml"
        path.write_text(
            f"model: {tiny_dir}\ndata: [{data or small_data['sft']}]\n"
            f"train: {{micro_batch_size: 2, max_steps: 1}}\n{body}"
        )
        return path

    return make


def test_bad_recipe_key(capsys, recipe, tmp_path):
    _fails_with(
        capsys,
        ["sft", recipe(), "--set", "train.lrr=1", "--output-dir", tmp_path / "o"],
        "unknown key 'train.lrr'",
        "did you mean 'train.lr'",
    )


def test_missing_data_file(capsys, recipe, tmp_path):
    _fails_with(
        capsys,
        ["sft", recipe(data=str(tmp_path / "nope.jsonl")), "--output-dir", tmp_path / "o"],
        "nope.jsonl: no such file or directory",
    )


def test_model_that_cannot_be_loaded_offline(capsys, recipe, tmp_path):
    _fails_with(
        capsys,
        ["sft", recipe(), "--set", "model=meta-llama/Meta-Llama-3-8B-Instruct", "--output-dir", tmp_path / "o"],
        "cannot load model 'meta-llama/Meta-Llama-3-8B-Instruct'",
        "offline",
    )


def test_empty_dataset(capsys, recipe, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    _fails_with(capsys, ["sft", recipe(data=str(empty)), "--output-dir", tmp_path / "o"], "empty.jsonl: no valid rows")


def test_invalid_row_names_file_row_and_field(capsys, recipe, tmp_path):
    bad = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
            {"messages": [{"role": "user", "content": "hi"}, {"role": "robot", "content": "yo"}]},
        ],
    )
    _fails_with(
        capsys,
        ["sft", recipe(data=str(bad)), "--output-dir", tmp_path / "o"],
        "bad.jsonl: row 2: field 'messages[1].role'",
    )


def test_sequence_longer_than_the_context(capsys, recipe, tmp_path, small_data):
    _fails_with(
        capsys,
        ["sft", recipe(), "--set", "data.max_length=8", "--output-dir", tmp_path / "o"],
        f"{small_data['sft']}: row 1: field 'messages'",
        "longer than max_length 8",
    )
    _fails_with(
        capsys,
        ["sft", recipe(), "--set", "data.max_length=100000", "--output-dir", tmp_path / "o2"],
        "longer than the model's context",
    )


def test_an_existing_run_is_not_overwritten_without_resume(capsys, recipe, tmp_path):
    out = tmp_path / "o"
    (out / "checkpoints").mkdir(parents=True)
    _fails_with(capsys, ["sft", recipe(), "--output-dir", out], "already holds a run", "--resume")
