"""Bad bytes, deep nesting, lone surrogates, oversized rows and unreadable files: each an invalid
row or a one-line error naming the file and where in it, never a traceback."""

import csv
import json
import warnings
from pathlib import Path

import pytest

from posttrain.data.records import RecordError
from posttrain.data.sources import load_records, read_rows
from posttrain.data.text_files import check_row, read_text_file
from posttrain.errors import UserError

GOOD = b'{"text": "alpha"}\n'


def user_error(call, *args, **kwargs):
    with pytest.raises(UserError) as caught:
        call(*args, **kwargs)
    return str(caught.value)


def test_non_utf8_row_is_skipped_and_counted(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(GOOD + b'{"text": "caf\xe9"}\n' + GOOD)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_records(path, on_error="skip")
    assert loaded.rows == [1, 3] and loaded.skipped == 1
    assert [str(w.message) for w in caught] == [
        f"{path}: skipped 1 invalid row (first: row 2 field '(utf-8)': not UTF-8 text: byte 0xe9 at "
        "byte offset 31 (invalid continuation byte))"
    ]


def test_byte_offset_counts_a_leading_bom(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD + b'{"text": "\xff"}\n')
    assert "byte 0xff at byte offset 31" in user_error(load_records, path)


def test_row_nested_too_deeply(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(GOOD + b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n")
    assert user_error(load_records, path) == (
        f"{path}: row 2: field '(json)': nested too deeply to read (arrays/objects inside each other)"
    )
    deep = tmp_path / "d.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    assert user_error(load_records, deep) == f"{deep}: invalid JSON: nested too deeply to read"


def test_lone_surrogate_names_its_field(tmp_path):
    path = tmp_path / "d.jsonl"
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "a\\ud800"}]}
    path.write_text(GOOD.decode() + json.dumps(row).replace("\\\\ud800", "\\ud800") + "\n")
    assert user_error(load_records, path, kind="auto", on_error="fail").startswith(
        f"{path}: row 2: field 'messages[1].content': lone surrogate \\ud800 at character 1"
    )


def test_check_row_sums_the_bytes_of_every_string():
    row = {"a": "\u00e9" * 3, "b": [{"c": "xy"}]}  # 6 + 2 UTF-8 bytes
    assert check_row(row, 8) is row and check_row(row, None) is row
    err = check_row(row, 7)
    assert isinstance(err, RecordError) and err.field == "(row)" and "above data.max_row_bytes 7" in err.problem


def test_row_above_max_row_bytes_fails_or_is_skipped(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(GOOD + json.dumps({"text": "x" * 500}).encode() + b"\n" + GOOD)
    assert user_error(load_records, path, max_row_bytes=100) == (
        f"{path}: row 2: field '(row)': 513 bytes, above data.max_row_bytes 100 (raise it, or set data.on_error: skip)"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert load_records(path, on_error="skip", max_row_bytes=100).rows == [1, 3]
    assert len(load_records(path, max_row_bytes=None).records) == 3


def test_max_row_bytes_holds_for_every_format(tmp_path):
    path = tmp_path / "d.csv"
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([["text"], ["short"], ["x" * 500]])
    assert "row 2: field '(row)': at least 500 bytes" in user_error(load_records, path, max_row_bytes=100)


def test_unreadable_file_is_one_line(tmp_path, monkeypatch):
    # The tests may run as root, for whom chmod 000 does not stop reading: simulate the refusal.
    path = tmp_path / "d.jsonl"
    path.write_bytes(GOOD)

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", refuse)
    assert user_error(load_records, path) == f"{path}: cannot read: Permission denied"
    assert user_error(lambda: list(read_rows(path))) == f"{path}: cannot read: Permission denied"


def test_text_file_that_is_not_utf8_names_line_and_offset(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"hello\nworld \xff\n")
    assert user_error(read_text_file, path) == (
        f"{path}: line 2: not UTF-8 text: byte 0xff at byte offset 12 (invalid start byte)"
    )
    path.write_bytes("caf\u00e9\n".encode())
    assert read_text_file(path) == "caf\u00e9\n"
