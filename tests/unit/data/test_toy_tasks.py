"""`posttrain synth toy-tasks`: the tiny recipes' parity/size questions and colour dialogues."""

import json
import re

from posttrain.cli import main
from posttrain.data.records import ConversationRecord, PreferenceRecord, to_record
from posttrain.data.synth.toy_tasks import BIG_FROM, HELD_OUT, write_toy_tasks


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _number(text):
    return int(re.search(r"\d+", text).group())


def test_answers_are_right_and_held_out_numbers_never_train(tmp_path):
    files = write_toy_tasks(tmp_path, seed=0)
    for task, right in (
        ("parity", lambda n: "even" if n % 2 == 0 else "odd"),
        ("size", lambda n: "big" if n >= BIG_FROM else "small"),
    ):
        test = _rows(files[f"{task}_test"])
        held_out = {_number(r["prompt"]) for r in test}
        assert len(test) == len(held_out) == HELD_OUT
        assert all(r["reference"] == right(_number(r["prompt"])) for r in test)
        sft = _rows(files[f"{task}_sft"])
        assert not held_out & {_number(r["messages"][0]["content"]) for r in sft}
        assert all(r["messages"][1]["content"] == right(_number(r["messages"][0]["content"])) for r in sft)
        pairs = _rows(files[f"{task}_pairs"])
        assert not held_out & {_number(r["prompt"]) for r in pairs}
        assert all(r["chosen"] == right(_number(r["prompt"])) != r["rejected"] for r in pairs)
        assert {_number(r["prompt"]) for r in _rows(files[f"{task}_pairs_eval"])} == held_out
    assert not list(tmp_path.glob("*.tmp"))  # written by rename, nothing half-written left


def test_dialogues_hold_the_colour_in_the_second_turn(tmp_path):
    files = write_toy_tasks(tmp_path)
    train, held_out = _rows(files["dialogues"]), _rows(files["dialogues_eval"])
    assert (len(train), len(held_out)) == (16, 8)
    assert not {json.dumps(d) for d in train} & {json.dumps(d) for d in held_out}
    for d in train + held_out:
        assert len(d["turns"]) == 2 and f"The colour is {d['reference']}." in d["turns"][1]
    sft = _rows(files["dialogues_sft"])
    assert [r["messages"][-1]["content"] for r in sft] == [d["reference"] for d in train]


def test_the_rows_read_as_the_stages_read_them(tmp_path):
    files = write_toy_tasks(tmp_path)
    assert all(isinstance(to_record(r, "conversation"), ConversationRecord) for r in _rows(files["parity_sft"]))
    assert all(isinstance(to_record(r, "preference"), PreferenceRecord) for r in _rows(files["size_pairs"]))
    assert all(isinstance(to_record(r, "conversation"), ConversationRecord) for r in _rows(files["dialogues_sft"]))


def test_the_command_writes_every_file_and_a_seed_changes_the_split(tmp_path):
    assert main(["synth", "toy-tasks", "--out", str(tmp_path / "a")]) == 0
    assert main(["synth", "toy-tasks", "--out", str(tmp_path / "b"), "--set", "seed=1"]) == 0
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir()) and len(names) == 11
    assert (tmp_path / "a" / "parity_test.jsonl").read_text() != (tmp_path / "b" / "parity_test.jsonl").read_text()
