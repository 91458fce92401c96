"""Readers (every format gives the same rows) and load_records (validation, skipping, error lines)."""

import json
import warnings

import pyarrow
import pyarrow.parquet
import pytest

from posttrain.data.records import ConversationRecord, PromptRecord, TextRecord
from posttrain.data.sources import load_records, read_rows
from posttrain.errors import UserError

ROWS = [{"text": "alpha"}, {"text": "beta"}]


def write_jsonl(path, lines):
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def user_error(call, *args, **kwargs):
    with pytest.raises(UserError) as caught:
        call(*args, **kwargs)
    return str(caught.value)


# ---- readers -----------------------------------------------------------------------------------


def test_jsonl_row_number_is_line_number_and_blank_lines_are_skipped(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [ROWS[0], "", "  ", ROWS[1]])
    assert list(read_rows(path)) == [(1, ROWS[0]), (4, ROWS[1])]


def test_jsonl_utf8_bom_and_crlf(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "caf\xc3\xa9"}\r\n{"text": "b"}\r\n')
    assert list(read_rows(path)) == [(1, {"text": "café"}), (2, {"text": "b"})]


def test_json_list(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps(ROWS))
    assert list(read_rows(path)) == [(1, ROWS[0]), (2, ROWS[1])]


def test_json_object_holding_one_list(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"version": 2, "data": ROWS}))
    assert list(read_rows(path)) == [(1, ROWS[0]), (2, ROWS[1])]


def test_parquet(tmp_path):
    path = tmp_path / "d.parquet"
    pyarrow.parquet.write_table(pyarrow.Table.from_pylist(ROWS), path)
    assert list(read_rows(path)) == [(1, ROWS[0]), (2, ROWS[1])]


def test_csv_row_one_is_first_data_row(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('instruction,output\n"Say ""hi""","line one\nline two"\n\nAdd,4\n')
    assert list(read_rows(path)) == [
        (1, {"instruction": 'Say "hi"', "output": "line one\nline two"}),
        (2, {"instruction": "Add", "output": "4"}),
    ]


def test_saved_dataset_directory(tmp_path):
    import datasets

    datasets.Dataset.from_list(ROWS).save_to_disk(tmp_path / "ds")
    assert list(read_rows(tmp_path / "ds")) == [(1, ROWS[0]), (2, ROWS[1])]


@pytest.fixture
def dataset_dict_dir(tmp_path):
    import datasets

    test = datasets.Dataset.from_list([{"text": "gamma"}])
    datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS), "test": test}).save_to_disk(tmp_path / "dd")
    return tmp_path / "dd"


def test_dataset_dict_defaults_to_train_and_selects_split(dataset_dict_dir):
    assert [row for _, row in read_rows(dataset_dict_dir)] == ROWS
    assert list(read_rows(dataset_dict_dir, split="test")) == [(1, {"text": "gamma"})]


def test_dataset_dict_unknown_split_lists_available(dataset_dict_dir):
    message = user_error(list, read_rows(dataset_dict_dir, split="validation"))
    assert message == f"{dataset_dict_dir}: no split 'validation'; available splits: train, test"


def test_split_on_a_plain_file_is_an_error(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", ROWS)
    assert [row for _, row in read_rows(path, split="train")] == ROWS
    message = user_error(list, read_rows(path, split="test"))
    assert message == f"{path}: has no split 'test': only a directory saved from a DatasetDict has splits"


# ---- reader errors -----------------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "nope.jsonl"
    assert user_error(load_records, path) == f"{path}: no such file or directory"


def test_unknown_suffix_lists_supported_formats(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("hello")
    assert user_error(load_records, path) == (
        f"{path}: unsupported format '.txt'; supported: "
        ".jsonl, .json, .parquet, .csv, or a directory written by datasets' save_to_disk"
    )


def test_directory_that_is_not_a_dataset(tmp_path):
    expected = f"{tmp_path}: directory is not a dataset written by save_to_disk"
    assert user_error(load_records, tmp_path).startswith(expected)


def test_invalid_json_line_names_file_row_and_field(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [ROWS[0], ROWS[1], '{"text": "unterminated'])
    message = user_error(load_records, path)
    assert message == f"{path}: row 3: field '(json)': invalid JSON: Unterminated string starting at column 10"


def test_jsonl_line_that_is_not_an_object(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [ROWS[0], "[1, 2]"])
    assert user_error(list, read_rows(path)) == f"{path}: row 2: field '(json)': expected a JSON object, got list"


def test_invalid_json_file(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[{"text": "a"},')
    assert user_error(load_records, path) == f"{path}: invalid JSON: Expecting value at line 1 column 16"


def test_json_single_record_is_explained(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "q"}]}))
    assert user_error(load_records, path) == f"{path}: holds a single record; a .json file must hold a list of records"


def test_json_object_without_one_list(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"a": [], "b": []}))
    assert user_error(load_records, path).endswith("got an object with 2 list values")


def test_csv_row_with_too_many_cells(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text\na\nb,c\n")
    assert user_error(load_records, path) == f"{path}: row 2: field '(csv)': 2 cells, but the header has 1 columns"


def test_not_a_parquet_file(tmp_path):
    path = tmp_path / "d.parquet"
    path.write_text("not parquet")
    assert user_error(load_records, path).startswith(f"{path}: cannot read as Parquet:")


# ---- load_records ------------------------------------------------------------------------------


def test_load_records_auto_detects_kind(tmp_path):
    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    path = write_jsonl(tmp_path / "d.jsonl", [{"instruction": "i", "output": "o"}, {"messages": messages}])
    loaded = load_records(path)
    assert loaded.kind == "conversation" and loaded.skipped == 0 and loaded.path == str(path)
    assert all(isinstance(record, ConversationRecord) for record in loaded.records)


def test_load_records_from_parquet_with_nulls_for_absent_fields(tmp_path):
    path = tmp_path / "d.parquet"
    rows = [{"instruction": "i", "input": "x", "output": "o"}, {"instruction": "j", "output": "p"}]
    pyarrow.parquet.write_table(pyarrow.Table.from_pylist(rows), path)
    loaded = load_records(path, kind="conversation")
    assert [record.messages[0]["content"] for record in loaded.records] == ["i\n\nx", "j"]


def test_load_records_renames_columns(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "2+2?", "answer": 4}])
    loaded = load_records(path, kind="prompt", columns={"question": "prompt"})
    assert loaded.records == [PromptRecord([{"role": "user", "content": "2+2?"}], "4")]


def test_renamed_column_errors_name_the_file_column(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": [{"role": "assistant", "content": "a"}]}])
    message = user_error(load_records, path, kind="prompt", columns={"question": "prompt"})
    assert message == f"{path}: row 1: field 'question[0].role': a prompt must end with a user message, got 'assistant'"


def test_explicit_kind_reads_rows_of_another_shape(tmp_path):
    messages = [{"role": "user", "content": "q"}]
    preference = {"prompt": "p", "chosen": "a", "rejected": "b"}
    loaded = load_records(write_jsonl(tmp_path / "d.jsonl", [{"messages": messages}, preference]), kind="prompt")
    assert [record.prompt[0]["content"] for record in loaded.records] == ["q", "p"]
    assert loaded.kind == "prompt"


def test_missing_field_error(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "a"}, {"txt": "b"}])
    assert user_error(load_records, path, kind="text") == f"{path}: row 2: field 'text': missing"


def test_wrong_role_error(tmp_path):
    messages = [{"role": "user", "content": "q"}, {"role": "bot", "content": "a"}]
    path = write_jsonl(tmp_path / "d.jsonl", [{"messages": messages}])
    message = user_error(load_records, path)
    assert message == f"{path}: row 1: field 'messages[1].role': unknown role 'bot'; expected system, user or assistant"


def test_conversation_without_assistant_error(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"messages": [{"role": "user", "content": "q"}]}])
    message = user_error(load_records, path, kind="conversation")
    assert message == f"{path}: row 1: field 'messages': no assistant message, so nothing to train on"


def test_auto_kind_is_held_to_the_first_valid_row(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "a"}, {"prompt": "q"}])
    message = user_error(load_records, path)
    assert message == f"{path}: row 2: field '(kind)': looks like a prompt row, but this file holds text rows"


def test_empty_file_has_no_valid_rows(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("\n")
    assert user_error(load_records, path) == f"{path}: no valid rows"


def test_skip_mode_counts_and_warns_once(tmp_path):
    lines = [{"text": "a"}, {"text": ""}, "not json", {"text": "b"}, {"text": 5}]
    path = write_jsonl(tmp_path / "d.jsonl", lines)
    with pytest.warns(UserWarning) as caught:
        loaded = load_records(path, on_error="skip")
    assert loaded.records == [TextRecord("a"), TextRecord("b")] and loaded.skipped == 3
    assert loaded.rows == [1, 4]
    assert [str(warning.message) for warning in caught] == [
        f"{path}: skipped 3 invalid rows (first: row 2 field 'text': empty)"
    ]


def test_skip_mode_with_nothing_left(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": ""}])
    with warnings.catch_warnings(record=True):
        assert user_error(load_records, path, on_error="skip") == f"{path}: no valid rows"


def test_bad_options_are_user_errors(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", ROWS)
    assert user_error(load_records, path, kind="chat").startswith("unknown record kind 'chat'")
    assert user_error(load_records, path, on_error="ignore") == "unknown on_error 'ignore'; expected one of fail, skip"


def test_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"text": "a"}\n{"text": "\xff"}\n')
    assert user_error(load_records, path) == (
        f"{path}: row 2: field '(utf-8)': not UTF-8 text: byte 0xff at byte offset 24 (invalid start byte)"
    )
