"""Non-instructional data: the split point is the whitespace nearest the middle, and documents are
read from .jsonl (a text field) or .txt (blank-line separated), with one-line errors."""

import pytest

from posttrain.errors import UserError
from posttrain.synthesis.non_instructional import read_documents, split_at_word_boundary


def test_split_is_the_whitespace_nearest_the_middle():
    text = "aaaa bb cccccc"  # length 14, middle 7: spaces at 4 and 7
    assert split_at_word_boundary(text) == 7
    assert split_at_word_boundary("ab cd") == 2 and split_at_word_boundary("one  two") == 3  # tie: earlier
    assert split_at_word_boundary("nowhitespace") is None and split_at_word_boundary(" lead") is None
    k = split_at_word_boundary("The child reads books after school.")
    assert "The child reads books after school."[k] == " "


def test_documents_from_jsonl_and_txt(tmp_path):
    (tmp_path / "d.txt").write_text("First paragraph here.\n\n\n\nSecond one.\n")
    assert read_documents(str(tmp_path / "d.txt"), "text") == [(1, "First paragraph here."), (3, "Second one.")]
    (tmp_path / "d.jsonl").write_text('{"body": "x y"}\n{"body": 3}\n')
    with pytest.raises(UserError, match=r"d.jsonl: row 2: field 'body': expected the document's text"):
        read_documents(str(tmp_path / "d.jsonl"), "body")
    with pytest.raises(UserError, match="missing.txt: input file not found"):
        read_documents(str(tmp_path / "missing.txt"), "text")
    (tmp_path / "e.txt").write_text("\n\n")
    with pytest.raises(UserError, match="e.txt: no documents"):
        read_documents(str(tmp_path / "e.txt"), "text")
