"""Issue 30 item 7: a cycleqd task name becomes a safe file name; nothing is written outside --out
whatever the names say (path separators, '..', a leading dot, an empty result)."""

import json

import pytest
import yaml

from posttrain.cli import main


def _files(root, skip):
    return {p for p in root.rglob("*") if skip not in p.parents and p != skip}


def test_traversal_task_names_stay_inside_out(family, tmp_path, capsys):
    tasks = []
    for i, (name, answer) in enumerate([("../../../x", "1"), ("/etc/y", "2")]):
        path = tmp_path / f"task{i}.jsonl"
        path.write_text("".join(json.dumps({"prompt": f"Say {answer}", "reference": answer}) + "\n" for _ in range(2)))
        tasks.append({"data": str(path), "answer": "text", "max_new_tokens": 2, "name": name})
    recipe = tmp_path / "qd.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "base": str(family["base"]),
                "experts": [str(family["a"]), str(family["b"])],
                "tasks": tasks,
                "generations": 1,
                "limit": 2,
            }
        )
    )
    out = tmp_path / "a" / "b" / "out"
    out.parent.mkdir(parents=True)
    before = _files(tmp_path, out)
    assert main(["cycleqd", str(recipe), "--out", str(out)]) == 0
    assert _files(tmp_path, out) == before  # nothing new outside --out
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["best-.._.._.._x", "best-_etc_y"]
    assert set(json.loads((out / "cycleqd.json").read_text())["best"]) == {"../../../x", "/etc/y"}


@pytest.mark.parametrize(
    "name, safe",
    [
        ("../../../x", "_.._.._.._x"),
        ("..", "_.."),
        (".hidden", "_.hidden"),
        ("a/b\\c", "a_b_c"),
        ("", "_"),
        ("ok-name_1.2", "ok-name_1.2"),
        ("x\x00y", "x_y"),
    ],
)
def test_safe_file_name(name, safe):
    from posttrain.checkpoint.output_dir import safe_file_name

    assert safe_file_name(name) == safe
