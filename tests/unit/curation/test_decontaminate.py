"""N-gram decontamination: the coverage rule on hand-made texts, and planted eval items removed
(and nothing else) from a file of 10,000 rows."""

import json
import random

import pytest

from posttrain.cli import main
from posttrain.curation.decontaminate import EvalIndex, tokens
from tests.unit.curation.synthetic import (
    chat,
    read_jsonl,
    sentence,
    vocabulary,
    write_jsonl,
)


def test_tokens_are_lowercased_word_runs_without_punctuation():
    assert tokens("Hello, World! It's 3.5 km") == ["hello", "world", "it", "s", "3", "5", "km"]


def test_coverage_counts_eval_tokens_inside_shared_ngrams():
    item = "a b c d e f g h i j"  # 10 tokens
    index = EvalIndex([("ev", "0", item)], n=3, match="coverage", threshold=0.5)
    # "a b c d" holds the 3-grams abc, bcd: tokens a..d covered = 4/10
    assert index.best_match("x a b c d y") is None
    assert index.coverage(0, {hash(t) for t in [("a", "b", "c"), ("b", "c", "d")]}) == pytest.approx(0.4)
    # "a b c d e" holds abc bcd cde: 5/10 = 0.5, not above 0.5; "a b c d e f": 0.6
    assert index.best_match("x a b c d e y") is None
    assert index.best_match("x a b c d e f y") == (0, pytest.approx(0.6))
    # two separate pieces add up: a b c + h i j = 6/10
    assert index.best_match("A B C then H, I, J") == (0, pytest.approx(0.6))
    anyrule = EvalIndex([("ev", "0", item)], n=3, match="any", threshold=0.5)
    assert anyrule.best_match("zz e f g zz") == (0, pytest.approx(0.3))
    assert anyrule.best_match("zz e f zz g") is None


def test_short_eval_item_must_occur_whole():
    index = EvalIndex([("ev", "0", "two plus three")], n=8, match="coverage", threshold=0.5)
    assert index.best_match("what is two plus three exactly") == (0, 1.0)
    assert index.best_match("two plus four, three") is None


def _planted_files(tmp_path):
    """10,000 chat rows of random words; 40 eval items; 30 rows hold a whole eval item (recased,
    punctuated, inside other words), 30 rows hold near misses that must stay: 7 consecutive words
    of an item (no 8-gram), 40% of an item's words (coverage 0.4), or a whole item in the
    assistant turn (the default checks prompts only)."""
    rng = random.Random(0)
    words = vocabulary()
    evals = [" ".join(sentence(rng, words, 20, 30)) for _ in range(40)]
    rows = [chat(" ".join(sentence(rng, words, 10, 40)), " ".join(sentence(rng, words, 5, 20))) for _ in range(10_000)]
    planted, positions = {}, rng.sample(range(10_000), 60)
    for k, position in enumerate(positions[:30]):
        item = evals[k % 40].split()
        text = " ".join(w.upper() if i % 3 == 0 else w + "," for i, w in enumerate(item))
        rows[position] = chat(f"{rng.choice(words)} {text}? {rng.choice(words)}")
        planted[position + 1] = str(k % 40 + 1)  # row number -> eval file row number
    for k, position in enumerate(positions[30:]):
        item = evals[k].split()
        if k % 3 == 0:
            rows[position] = chat(" ".join(item[3:10]) + " " + rng.choice(words))
        elif k % 3 == 1:
            rows[position] = chat(" ".join(item[: int(0.4 * len(item))]))
        else:
            rows[position] = chat("tell me something", " ".join(item))
    write_jsonl(tmp_path / "train.jsonl", rows)
    write_jsonl(tmp_path / "eval.jsonl", [{"question": e, "answer": "1"} for e in evals])
    return planted


def test_planted_eval_items_are_removed_and_nothing_else(tmp_path):
    planted = _planted_files(tmp_path)
    out = tmp_path / "clean.jsonl"
    assert (
        main(
            [
                "curate",
                "decontaminate",
                "--set",
                f"input={tmp_path / 'train.jsonl'}",
                "--set",
                f"eval_files=[{tmp_path / 'eval.jsonl'}]",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    report = read_jsonl(tmp_path / "clean.removed.jsonl")
    assert {r["row"]: r["eval_item"] for r in report} == planted
    assert all(r["coverage"] == 1.0 and r["filter"] == "decontaminate" for r in report)
    original = read_jsonl(tmp_path / "train.jsonl")
    assert read_jsonl(out) == [row for number, row in enumerate(original, 1) if number not in planted]
    manifest = json.loads((tmp_path / "clean.manifest.json").read_text())
    assert manifest["counts"] == {"rows_in": 10_000, "kept": 9_970, "removed": 30, "removed_by": {"decontaminate": 30}}
    assert (manifest["n"], manifest["match"], manifest["threshold"]) == (8, "coverage", 0.5)


def test_builtin_eval_task_items_are_found(tmp_path):
    from posttrain.eval.tasks.builtin import resolve_task
    from posttrain.eval.tasks.documents import load_documents

    docs, _ = load_documents(resolve_task("arithmetic"))
    write_jsonl(tmp_path / "train.jsonl", [chat("Unrelated words here, nothing to see."), chat(docs[3]["prompt"])])
    out = tmp_path / "clean.jsonl"
    assert (
        main(
            [
                "curate",
                "decontaminate",
                "--set",
                f"input={tmp_path / 'train.jsonl'}",
                "--set",
                "eval_tasks=[arithmetic]",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert [(r["row"], r["eval_source"], r["eval_item"]) for r in read_jsonl(tmp_path / "clean.removed.jsonl")] == [
        (2, "arithmetic", "3")
    ]


def test_file_backed_builtin_task_and_its_format_errors(tmp_path, capsys):
    question = "Natalia sold clips to 48 of her friends in April, and then she sold half as many in May."
    write_jsonl(tmp_path / "gsm8k.jsonl", [{"question": question, "answer": "48/2 = 24\n#### 72"}])
    write_jsonl(tmp_path / "train.jsonl", [chat(f"Q: {question} How many?"), chat("Natalia sold clips.")])
    args = ["curate", "decontaminate", "--set", f"input={tmp_path / 'train.jsonl'}", "--out", str(tmp_path / "c.jsonl")]
    assert main([*args, "--set", f"eval_tasks=[gsm8k={tmp_path / 'gsm8k.jsonl'}]"]) == 0
    assert [(r["row"], r["eval_source"]) for r in read_jsonl(tmp_path / "c.removed.jsonl")] == [(1, "gsm8k")]
    write_jsonl(tmp_path / "bad.jsonl", [{"question": question, "answer": "72"}])
    assert main([*args, "--set", f"eval_tasks=[gsm8k={tmp_path / 'bad.jsonl'}]"]) == 2
    assert "bad.jsonl: row 1: not a 'gsm8k' row" in capsys.readouterr().err


@pytest.mark.parametrize(
    "eval_row, train_row, message",
    [
        ({"answer": "1"}, chat("hi"), "eval.jsonl: row 1: field 'prompt': no prompt text"),
        ({"question": "a b"}, {"foo": 1}, "train.jsonl: row 1: field '(kind)'"),
        (None, chat("hi"), "eval.jsonl: no such file"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, eval_row, train_row, message):
    if eval_row is not None:
        write_jsonl(tmp_path / "eval.jsonl", [eval_row])
    write_jsonl(tmp_path / "train.jsonl", [train_row])
    assert (
        main(
            [
                "curate",
                "decontaminate",
                "--set",
                f"input={tmp_path / 'train.jsonl'}",
                "--set",
                f"eval_files=[{tmp_path / 'eval.jsonl'}]",
                "--out",
                str(tmp_path / "c.jsonl"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("posttrain: error: ") and message in err


def test_removing_everything_exits_non_zero_naming_the_filter(tmp_path, capsys):
    write_jsonl(tmp_path / "eval.jsonl", [{"prompt": "the same words in every row"}])
    write_jsonl(tmp_path / "train.jsonl", [chat("the same words in every row")] * 3)
    assert (
        main(
            [
                "curate",
                "decontaminate",
                "--set",
                f"input={tmp_path / 'train.jsonl'}",
                "--set",
                f"eval_files=[{tmp_path / 'eval.jsonl'}]",
                "--out",
                str(tmp_path / "c.jsonl"),
            ]
        )
        == 2
    )
    assert "every row was removed (3 rows; removed by: decontaminate 3)" in capsys.readouterr().err
