"""Released benchmark files read as documents: one row of each format as it is distributed."""

import json

import pytest

from posttrain.errors import UserError
from posttrain.eval.tasks.builtin import resolve_task
from posttrain.eval.tasks.documents import load_documents


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _docs(name, data, **overrides):
    task = resolve_task(name, [f"{k}={v}" for k, v in overrides.items()], data=str(data))
    return load_documents(task)[0]


def test_gsm8k(tmp_path):
    row = {"question": "Natalia sold 48 clips?", "answer": "She sold 48/2 = <<48/2=24>>24 more.\n#### 1,072"}
    doc = _docs("gsm8k", _jsonl(tmp_path / "test.jsonl", [row]))[0]
    assert (doc["prompt"], doc["rationale"], doc["reference"]) == (
        "Natalia sold 48 clips?",
        "She sold 48/2 = 24 more.",
        "1072",
    )


def test_mmlu_released_csv_directory(tmp_path):
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "abstract_algebra_test.csv").write_text('"What is 2+2?",3,4,5,6,B\n"Q2",a,b,c,d,D\n')
    docs = _docs("mmlu", tmp_path / "test")
    assert [(d["choices"], d["gold"], d["subject"]) for d in docs] == [
        (["3", "4", "5", "6"], 1, "abstract algebra"),
        (["a", "b", "c", "d"], 3, "abstract algebra"),
    ]


def test_mmlu_hf_parquet(tmp_path):
    import pandas as pd

    path = tmp_path / "mmlu.parquet"
    pd.DataFrame([{"question": "Q", "subject": "x", "choices": ["a", "b", "c", "d"], "answer": 2}]).to_parquet(path)
    assert _docs("mmlu", path)[0]["gold"] == 2


def test_arc_released_and_hf_layouts(tmp_path):
    released = {
        "id": "1",
        "answerKey": "2",
        "question": {"stem": "Which?", "choices": [{"text": "x", "label": "1"}, {"text": "y", "label": "2"}]},
    }
    hf = {
        "id": "2",
        "question": "Which?",
        "choices": {"text": ["x", "y", "z"], "label": ["A", "B", "C"]},
        "answerKey": "C",
    }
    docs = _docs("arc", _jsonl(tmp_path / "arc.jsonl", [released, hf]))
    assert [(d["prompt"], d["choices"], d["gold"]) for d in docs] == [
        ("Which?", ["x", "y"], 1),
        ("Which?", ["x", "y", "z"], 2),
    ]


def test_boolq_answers_and_labels(tmp_path):
    rows = [{"question": "is it", "passage": "p", "answer": True}, {"question": "is it", "passage": "p", "label": 0}]
    assert [d["label"] for d in _docs("boolq", _jsonl(tmp_path / "b.jsonl", rows))] == ["yes", "no"]


def test_ifeval_drops_null_kwargs(tmp_path):
    row = {
        "key": 1,
        "prompt": "Write",
        "instruction_id_list": ["punctuation:no_comma", "keywords:existence"],
        "kwargs": [{"keywords": None}, {"keywords": ["a"], "num_words": None}],
    }
    doc = _docs("ifeval", _jsonl(tmp_path / "input_data.jsonl", [row]))[0]
    assert doc["kwargs"] == [{}, {"keywords": ["a"]}]


def test_alpaca_eval_json_list(tmp_path):
    path = tmp_path / "alpaca_eval.json"
    path.write_text(json.dumps([{"instruction": "Say hi", "output": "Hi!", "generator": "gpt4", "dataset": "x"}]))
    doc = _docs("alpaca_eval", path, **{"judge.model": "x"})[0]
    assert (doc["prompt"], doc["baseline"]) == ("Say hi", "Hi!")


def test_translation_pairs_need_a_direction(tmp_path):
    path = _jsonl(tmp_path / "wmt.jsonl", [{"translation": {"de": "Hallo", "en": "Hello"}}])
    doc = _docs("translation", path, format="translation:de-en")[0]
    assert (doc["prompt"], doc["reference"], doc["target_language"]) == ("Hallo", "Hello", "English")
    with pytest.raises(UserError, match="row 1: .*direction"):
        _docs("translation", path)


def test_missing_data_and_bad_rows_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match=r"task 'gsm8k' needs data: --data gsm8k=PATH"):
        load_documents(resolve_task("gsm8k"))
    with pytest.raises(UserError, match=r"row 2: not a 'gsm8k' row: 'answer' has no '#### <number>'"):
        _docs(
            "gsm8k",
            _jsonl(tmp_path / "g.jsonl", [{"question": "q", "answer": "#### 1"}, {"question": "q", "answer": "1"}]),
        )


def test_generated_arithmetic_is_the_quickstart_test_set():
    from posttrain.data.synth.arithmetic import eval_rows

    docs, pool = load_documents(resolve_task("arithmetic"), limit=5)
    assert [(d["prompt"], d["reference"]) for d in docs] == [
        (r["prompt"], r["reference"]) for r in eval_rows(200, 3)[:5]
    ]
    assert {d["prompt"] for d in pool}.isdisjoint(r["prompt"] for r in eval_rows(200, 3))
    assert all(d["rationale"] and d["reference"].lstrip("-").isdigit() for d in pool)


def test_evaluation_rows_above_the_tasks_max_row_bytes_are_one_line_errors(tmp_path):
    path = _jsonl(
        tmp_path / "g.jsonl", [{"question": "q", "answer": "#### 1"}, {"question": "q" * 300, "answer": "#### 2"}]
    )
    assert len(_docs("gsm8k", path)) == 2  # the default limit is 1 MiB
    with pytest.raises(UserError) as err:
        _docs("gsm8k", path, max_row_bytes=200)
    size = len(json.dumps({"question": "q" * 300, "answer": "#### 2"}) + "\n")  # the line's bytes
    assert str(err.value) == f"{path}: row 2: field '(row)': {size} bytes, above the task's max_row_bytes 200"
