"""data.on_error: skip drops and counts the rows that fail after validation (too long for
max_length, a missing REBEL score) in `posttrain kto` and `posttrain dpo --loss rebel`; fail names
the row. (`posttrain grpo`'s prompts: tests/integration/test_grpo.py.)"""

import json

import pytest

from posttrain.data.preference import tokenize_pairs
from posttrain.data.sources import load_records
from posttrain.data.unpaired import read_unpaired, tokenize_unpaired
from posttrain.errors import UserError
from posttrain.model.load import load_tokenizer


@pytest.fixture(scope="module")
def tok(tiny_dir):
    return load_tokenizer(str(tiny_dir))


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _scored(chosen_score=1.0, rejected_score=0.0, chosen="even"):
    return {
        "prompt": "Is 12 even?",
        "chosen": chosen,
        "rejected": "odd",
        "chosen_score": chosen_score,
        "rejected_score": rejected_score,
    }


def test_rebel_scores_missing_or_invalid_are_skipped_or_named(tok, tmp_path):
    path = _jsonl(
        tmp_path / "p.jsonl",
        [_scored(), _scored(chosen_score=None), _scored(rejected_score="x"), _scored(chosen="even " * 200)],
    )
    loaded = load_records(path, "preference")
    with pytest.warns(UserWarning, match=r"skipped 3 rows \(first: row 2 field 'chosen_score'"):
        pairs = tokenize_pairs(tok, loaded, 64, "skip", with_scores=True)
    assert [p.scores for p in pairs] == [(1.0, 0.0)]
    with pytest.raises(UserError, match=r"p.jsonl: row 2: field 'chosen_score': a number is needed"):
        tokenize_pairs(tok, loaded, 64, "fail", with_scores=True)


def _unpaired(completion="yes", label=True):
    return {"prompt": "Is 12 even?", "completion": completion, "label": label}


def test_kto_invalid_rows_are_skipped_or_named(tmp_path):
    path = _jsonl(tmp_path / "u.jsonl", [_unpaired(), _unpaired(label="maybe"), _unpaired(label=False)])
    with pytest.warns(UserWarning, match=r"skipped 1 rows \(first: row 2 field 'label'"):
        examples = read_unpaired(path, "skip")
    assert [(e.row, e.desirable) for e in examples] == [(1, True), (3, False)]
    with pytest.raises(UserError, match=r"u.jsonl: row 2: field 'label'"):
        read_unpaired(path, "fail")


def test_kto_examples_too_long_are_skipped_or_named(tok, tmp_path):
    rows = [_unpaired(), _unpaired("no", False), _unpaired("yes " * 200), _unpaired("ok")]
    path = _jsonl(tmp_path / "u.jsonl", rows)
    with pytest.raises(
        UserError, match=r"u.jsonl: row \d: field 'completion': prompt \+ completion.*: \d+ tokens, longer"
    ):
        tokenize_unpaired(tok, read_unpaired(path), 64, seed=0)
    with pytest.warns(UserWarning, match=r"skipped \d rows"):
        kept = tokenize_unpaired(tok, read_unpaired(path), 64, seed=0, on_error="skip")
    # row 3 is too long, and so is the example whose mismatched partner is row 3's completion
    assert 3 not in {e.row for e in kept} and 2 <= len(kept) <= 3
    assert all(len(e) <= 64 for e in kept)
