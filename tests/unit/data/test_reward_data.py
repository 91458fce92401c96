"""Reward-model data: pair annotations (margin, strength) validated per row, HelpSteer2-style rated
rows with missing attributes masked, response sets for `score`, and the batch layout."""

import json
import warnings

import pytest
import torch

from posttrain.config.recipe import SourceConfig
from posttrain.data.preference import tokenize_completion
from posttrain.data.reward import (
    collate_rated,
    collate_reward_pairs,
    rated_responses,
    response_sets,
    reward_pairs,
)
from posttrain.errors import UserError
from posttrain.model.load import load_tokenizer

HELPSTEER2 = ["helpfulness", "correctness", "coherence", "complexity", "verbosity"]


@pytest.fixture(scope="module")
def tok(tiny_dir):
    return load_tokenizer(str(tiny_dir))


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return SourceConfig(path=str(path))


def _pair(**extra):
    return {"prompt": "Is 12 even or odd?", "chosen": "even", "rejected": "odd, I think", **extra}


def test_pairs_carry_their_strengths_and_batch_chosen_then_rejected(tok, tmp_path):
    source = _jsonl(tmp_path / "p.jsonl", [_pair(strength=3), _pair(strength=1.0)])
    pairs = reward_pairs(tok, source, 64, "fail", strength_field="strength")
    expected = tokenize_completion(
        tok, [{"role": "user", "content": "Is 12 even or odd?"}], [{"role": "assistant", "content": "even"}]
    ).input_ids
    assert pairs[0].chosen == expected and [p.strength for p in pairs] == [3.0, 1.0]
    assert pairs[0].margin is None
    batch = collate_reward_pairs(pairs, tok.pad_token_id)
    assert batch["input_ids"].shape == (4, len(pairs[0].rejected))
    assert batch["input_ids"][0, : len(expected)].tolist() == expected  # chosen rows come first
    assert batch["input_ids"][0, len(expected) :].eq(tok.pad_token_id).all()  # right padding
    assert batch["strengths"].tolist() == [3.0, 1.0] and "margins" not in batch
    assert int(batch["num_pairs"]) == 2
    assert int(batch["num_tokens"]) == 2 * len(pairs[0].chosen) + 2 * len(pairs[0].rejected)


@pytest.mark.parametrize(
    "strength, problem",
    [
        (4, "must be 1, 2 or 3, got 4"),
        (0, "got 0"),
        ("much", "expected a number"),
        (None, "missing"),
        (True, "expected a number"),
    ],
)
def test_a_bad_strength_is_a_row_error(tok, tmp_path, strength, problem):
    source = _jsonl(tmp_path / "p.jsonl", [_pair(strength=2), _pair(strength=strength)])
    with pytest.raises(UserError, match=rf"p.jsonl: row 2: field 'strength': .*{problem}"):
        reward_pairs(tok, source, 64, "fail", strength_field="strength")


def test_bad_rows_are_skipped_and_counted_with_on_error_skip(tok, tmp_path):
    rows = [_pair(margin=0.5), _pair(margin="big"), _pair(margin=None)]
    source = _jsonl(tmp_path / "p.jsonl", rows)
    with pytest.warns(UserWarning, match="skipped 2 rows"):
        pairs = reward_pairs(tok, source, 64, "skip", margin_field="margin")
    assert [p.margin for p in pairs] == [0.5]
    with pytest.raises(UserError, match="no usable preference pairs"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reward_pairs(tok, _jsonl(tmp_path / "q.jsonl", [_pair()]), 64, "skip", margin_field="margin")


def test_csv_cells_and_renamed_columns_are_read(tok, tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("prompt,chosen,rejected,preference_strength\nHi,Hello!,Go away.,2\n")
    source = SourceConfig(path=str(path), columns={"preference_strength": "strength"})
    assert reward_pairs(tok, source, 64, "fail", strength_field="strength")[0].strength == 2.0


def test_a_pair_longer_than_max_length_names_its_row(tok, tmp_path):
    source = _jsonl(tmp_path / "p.jsonl", [_pair(), _pair(chosen="even " * 50)])
    too_long = r"row 2: field 'chosen/rejected': \d+ tokens, longer than max_length 40"
    with pytest.raises(UserError, match=too_long):
        reward_pairs(tok, source, 40, "fail")


def test_helpsteer2_rows_mask_missing_attributes(tok, tmp_path):
    rows = [
        {
            "prompt": "Say hi",
            "response": "Hi!",
            "helpfulness": 3,
            "correctness": 4,
            "coherence": 4,
            "complexity": 0,
            "verbosity": 1,
        },
        {
            "prompt": "Say hi",
            "response": "Hello there.",
            "helpfulness": 2,
            "verbosity": None,
            "correctness": float("nan"),
        },
    ]  # absent, null and NaN (pandas' missing float) alike
    rated = rated_responses(tok, _jsonl(tmp_path / "h.jsonl", rows), HELPSTEER2, 64, "fail")
    assert rated[0].targets == [3.0, 4.0, 4.0, 0.0, 1.0] and all(rated[0].annotated)
    assert rated[1].annotated == [True, False, False, False, False]
    batch = collate_rated(rated, tok.pad_token_id)
    assert batch["targets"].shape == (2, 5) and batch["attribute_mask"].dtype == torch.bool
    assert batch["attribute_mask"].sum() == 6


@pytest.mark.parametrize(
    "row, field, problem",
    [
        ({"prompt": "Hi", "response": "Yo", "helpfulness": "good"}, "helpfulness", "expected a number"),
        ({"prompt": "Hi", "response": "Yo"}, "helpfulness/verbosity", "no attribute annotated"),
        ({"prompt": "Hi", "helpfulness": 2}, "response", "missing"),
        (
            {"prompt": [{"role": "assistant", "content": "x"}], "response": "Yo", "helpfulness": 1},
            r"prompt\[0\].role",
            "must end with a user message",
        ),
    ],
)
def test_bad_rated_rows_name_their_field(tok, tmp_path, row, field, problem):
    source = _jsonl(tmp_path / "h.jsonl", [row])
    with pytest.raises(UserError, match=rf"row 1: field '{field}': .*{problem}"):
        rated_responses(tok, source, ["helpfulness", "verbosity"], 64, "fail")


def test_response_sets_keep_the_rows_as_written(tmp_path):
    messages = [{"role": "user", "content": "Hi"}]
    path = _jsonl(
        tmp_path / "r.jsonl",
        [{"prompt": "Hi", "responses": ["Yo", "Hello"]}, {"prompt": messages, "completions": ["Hey"]}],
    ).path
    first, second = response_sets(path)
    assert first.prompt == "Hi" and first.prompt_messages == messages
    assert first.response_messages[1] == [{"role": "assistant", "content": "Hello"}]
    assert second.prompt == messages and second.responses == ["Hey"] and second.row == 2
    bad = _jsonl(tmp_path / "bad.jsonl", [{"prompt": "Hi", "responses": ["Yo", ""]}]).path
    with pytest.raises(UserError, match=r"row 1: field 'responses\[1\]'"):
        response_sets(bad)
    with pytest.raises(UserError, match="row 1: field 'responses': expected a list of responses, got string"):
        response_sets(_jsonl(tmp_path / "s.jsonl", [{"prompt": "Hi", "responses": "Yo"}]).path)


def test_rows_above_max_row_bytes_fail_or_are_skipped_before_tokenising(tok, tmp_path):
    big = {"prompt": "Hi", "response": "Yo " * 100, "helpfulness": 1}
    small = {"prompt": "Hi", "response": "Yo", "helpfulness": 2}
    rated_source = _jsonl(tmp_path / "h.jsonl", [small, big])
    with pytest.raises(UserError, match=r"row 2: field '\(row\)': \d+ bytes, above data.max_row_bytes 200"):
        rated_responses(tok, rated_source, ["helpfulness"], 512, "fail", max_row_bytes=200)
    with pytest.warns(UserWarning, match="skipped 1 rows"):
        rated = rated_responses(tok, rated_source, ["helpfulness"], 512, "skip", max_row_bytes=200)
    assert [r.targets for r in rated] == [[2.0]]
    assert len(rated_responses(tok, rated_source, ["helpfulness"], 512, "fail", max_row_bytes=None)) == 2
    pair_source = _jsonl(tmp_path / "p.jsonl", [_pair(margin=1), _pair(chosen="yes " * 100, margin=2)])
    with pytest.raises(UserError, match=r"row 2: field '\(row\)': .*above data.max_row_bytes 200"):
        reward_pairs(tok, pair_source, 512, "fail", max_row_bytes=200)
    with pytest.warns(UserWarning, match="skipped 1 invalid row"):
        pairs = reward_pairs(tok, pair_source, 512, "skip", margin_field="margin", max_row_bytes=200)
    assert [p.margin for p in pairs] == [1.0]
