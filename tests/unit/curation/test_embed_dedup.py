"""Embedding near-dedup: the greedy rule on hand-made vectors, planted near-duplicates found with
the real MiniLM model, and bad input as one line."""

import json

import numpy as np
import pytest

from posttrain.cli import main
from posttrain.curation.embed_dedup import Recipe, assign_duplicates, run
from posttrain.retrieval.index import VectorIndex

DISTINCT = [
    "The recipe needs two cups of flour and a pinch of salt.",
    "Photosynthesis turns sunlight, water and carbon dioxide into sugar.",
    "The stock market closed lower after the central bank raised rates.",
    "Our team won the football match in the last minute.",
    "Rust's borrow checker prevents data races at compile time.",
    "The Amazon river carries more water than any other river.",
    "She practised the violin every morning before school.",
    "Mount Everest is the highest mountain above sea level.",
    "A binary search halves the interval at every step.",
    "The museum opens at nine and closes at five on weekdays.",
    "Vaccines train the immune system to recognise a pathogen.",
    "He repaired the bicycle's flat tyre with a patch kit.",
]
# (index in DISTINCT it duplicates, near-duplicate text)
PLANTED = [
    (0, "The recipe needs two cups of flour and a pinch of salt!"),
    (4, "rust's borrow checker prevents data races at compile time"),
    (7, "Mount Everest is the tallest mountain above sea level."),
    (0, "The recipe needs 2 cups of flour and a pinch of salt."),
]


def unit(*xs):
    v = np.array(xs, dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_greedy_rule_by_hand():
    # a, then b at cos 0.995 to a (dup of a), c orthogonal (kept), d at cos 0.96 to c and 0.0 to a
    vectors = unit([1, 0, 0], [1, 0.1, 0], [0, 0, 1], [0, 0.29, 1])
    cos_bd = float(vectors[1] @ vectors[3])
    index = VectorIndex(3)
    verdicts = assign_duplicates(vectors[:2], [1, 2], index, 0.99)
    assert verdicts[0] is None and verdicts[1][0] == 1 and verdicts[1][1] == pytest.approx(1 / np.sqrt(1.01), abs=1e-6)
    later = assign_duplicates(vectors[2:], [3, 4], index, 0.95)  # row 1 is in the index, row 2 is not
    assert later[0] is None and later[1][0] == 3 and later[1][1] == pytest.approx(float(vectors[2] @ vectors[3]))
    assert cos_bd < 0.95 and len(index) == 2  # rows 1 and 3 kept


def test_a_row_close_only_to_a_removed_row_is_kept():
    # b within 0.9 of a (removed), c within 0.9 of b but not of a: c is kept
    angles = np.radians([0, 20, 40])
    vectors = np.stack([np.cos(angles), np.sin(angles)], 1).astype(np.float32)
    verdicts = assign_duplicates(vectors, [1, 2, 3], VectorIndex(2), 0.9)
    assert verdicts[0] is None and verdicts[1][0] == 1 and verdicts[2] is None


def _write(path, texts):
    path.write_text("".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(texts)))


@pytest.mark.parametrize("batch_size", [256, 5])
def test_planted_near_duplicates_are_removed_and_name_their_original(tmp_path, batch_size):
    texts = DISTINCT + [t for _, t in PLANTED]
    _write(tmp_path / "in.jsonl", texts)
    recipe = Recipe(
        input=str(tmp_path / "in.jsonl"), out=str(tmp_path / "out.jsonl"), threshold=0.9, batch_size=batch_size
    )
    assert run(recipe) == 0
    kept = [json.loads(x)["text"] for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    removed = [json.loads(x) for x in (tmp_path / "out.removed.jsonl").read_text().splitlines()]
    assert kept == DISTINCT
    assert [r["row"] for r in removed] == list(range(len(DISTINCT) + 1, len(texts) + 1))  # 1-based rows
    assert [r["duplicate_of"]["row"] for r in removed] == [i + 1 for i, _ in PLANTED]
    assert all(r["similarity"] >= 0.9 and r["filter"] == "embed-dedup" for r in removed)
    manifest = json.loads((tmp_path / "out.manifest.json").read_text())
    assert manifest["threshold"] == 0.9
    assert manifest["counts"] == {"rows_in": 16, "kept": 12, "removed": 4, "removed_by": {"embed-dedup": 4}}


def test_a_killed_multi_shard_run_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    """Shard 2 repeats rows of shard 1: after a crash in shard 2, the rerun still finds them."""
    from posttrain.curation import embed_dedup

    for name in ("a", "b"):
        (tmp_path / f"in{name}").mkdir()
        _write(tmp_path / f"in{name}" / "0.jsonl", DISTINCT)
        _write(tmp_path / f"in{name}" / "1.jsonl", [t for _, t in PLANTED] + DISTINCT[:2])
    whole = Recipe(input=str(tmp_path / "ina"), out=str(tmp_path / "outa"), threshold=0.9)
    assert run(whole) == 0
    calls = {"n": 0}
    original = embed_dedup.assign_duplicates

    def crash_in_second_shard(vectors, ids, index, threshold):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the kill, after shard 0 is committed
        return original(vectors, ids, index, threshold)

    recipe = Recipe(input=str(tmp_path / "inb"), out=str(tmp_path / "outb"), threshold=0.9)
    monkeypatch.setattr(embed_dedup, "assign_duplicates", crash_in_second_shard)
    with pytest.raises(KeyboardInterrupt):
        run(recipe)
    monkeypatch.setattr(embed_dedup, "assign_duplicates", original)
    assert run(recipe) == 0  # a fresh process would start the same way: an empty index
    for name in ("0.jsonl", "1.jsonl"):
        assert (tmp_path / "outb" / name).read_text() == (tmp_path / "outa" / name).read_text()
    reports = [(tmp_path / f"out{n}.removed.jsonl").read_text() for n in ("a", "b")]
    assert reports[0] == reports[1] and '"duplicate_of": {"shard_index": 0, "row": 1}' in reports[0]
    assert (tmp_path / "outb" / "1.jsonl").read_text() == ""  # every row of shard 1 repeats shard 0


def test_bad_input_is_one_line(tmp_path, capsys):
    _write(tmp_path / "in.jsonl", DISTINCT[:2])
    (tmp_path / "in.txt").write_text("hello\n")
    cases = [
        (
            [
                "--set",
                f"input={tmp_path / 'in.jsonl'}",
                "--set",
                f"model={tmp_path}",
                "--out",
                str(tmp_path / "o.jsonl"),
            ],
            "embedding model",
        ),
        (["--set", f"input={tmp_path / 'in.txt'}", "--out", str(tmp_path / "o.jsonl")], "in.txt"),
        (
            ["--set", f"input={tmp_path / 'in.jsonl'}", "--set", "threshold=1.5", "--out", str(tmp_path / "o.jsonl")],
            "threshold",
        ),
    ]
    for args, message in cases:
        assert main(["curate", "embed-dedup", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("posttrain: error:") and message in err and "\n" not in err, err
    assert not (tmp_path / "o.jsonl").exists()
