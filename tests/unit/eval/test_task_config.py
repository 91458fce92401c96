"""Task configurations are closed and typed: every built-in validates, YAML files may extend a
built-in, overrides reach any key, and mistakes are one-line errors naming the nearest key."""

import pytest

from posttrain.errors import UserError
from posttrain.eval.cli import split_data, split_overrides
from posttrain.eval.engine import resolve_tasks
from posttrain.eval.tasks.builtin import BUILTIN_TASKS, resolve_task


@pytest.mark.parametrize("name", sorted(BUILTIN_TASKS))
def test_every_builtin_task_validates(name):
    task = resolve_task(name, ["labels=[a, b]"] if name == "classification" else [])
    assert task.name == name and task.kind == BUILTIN_TASKS[name]["kind"]


def test_unknown_key_names_the_nearest(tmp_path):
    with pytest.raises(UserError, match=r"unknown key 'few_shots'.*did you mean 'few_shot'"):
        resolve_task("arithmetic", ["few_shots=3"])
    with pytest.raises(UserError, match=r"judge.modle.*did you mean 'model'"):
        resolve_task("alpaca_eval", ["judge.modle=x"])
    with pytest.raises(UserError, match=r"max_new_tokens: .*integer"):
        resolve_task("arithmetic", ["max_new_tokens=lots"])


def test_unknown_task_suggests_a_builtin():
    with pytest.raises(UserError, match=r"unknown task 'arithmetc' \(did you mean 'arithmetic'\?\)"):
        resolve_task("arithmetc")


def test_yaml_task_extends_a_builtin(tmp_path):
    path = tmp_path / "my_gsm.yaml"
    path.write_text("base: gsm8k\nfew_shot: 3\ndata: /some/where.jsonl\n")
    task = resolve_task(str(path), ["max_new_tokens=99"])
    assert (task.name, task.kind, task.few_shot, task.max_new_tokens, task.extract) == (
        "my_gsm",
        "generation",
        3,
        99,
        "final_number",
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: nonsense\n")
    with pytest.raises(UserError, match="kind must be one of"):
        resolve_task(str(bad))


def test_cli_overrides_go_to_their_task():
    specs = ["arithmetic", "tasks/my_gsm.yaml"]
    split = split_overrides(specs, ["arithmetic.few_shot=2", "limit=5", "my_gsm.chat=false"])
    assert split == {"arithmetic": ["few_shot=2", "limit=5"], "tasks/my_gsm.yaml": ["limit=5", "chat=false"]}
    assert split_data(specs, ["my_gsm=/d.jsonl"]) == {"tasks/my_gsm.yaml": "/d.jsonl"}
    with pytest.raises(UserError, match="not one of the tasks"):
        split_data(specs, ["gsm8k=/d.jsonl"])


def test_tasks_need_distinct_names():
    with pytest.raises(UserError, match="two tasks are named arithmetic"):
        resolve_tasks(["arithmetic", {"name": "arithmetic", "kind": "generation", "generator": "countdown"}])
