"""Exact and MinHash dedup on datatrove: planted exact copies and near-duplicates found at the
documented LSH threshold, recall and precision measured against the planted pairs."""

import json
import random

import pytest

from posttrain.cli import main
from posttrain.curation.dedup import collision_probability, lsh_threshold
from tests.unit.curation.synthetic import (
    chat,
    read_jsonl,
    sentence,
    vocabulary,
    write_jsonl,
)

SHINGLE = 5


def shingles(text: str) -> set:
    words = text.lower().split()
    return {tuple(words[i : i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)}


def jaccard(a: str, b: str) -> float:
    x, y = shingles(a), shingles(b)
    return len(x & y) / len(x | y)


def edited(rng, words, base: list[str], edits: int) -> list[str]:
    """`edits` single-word substitutions spread over the text."""
    copy = list(base)
    for position in rng.sample(range(len(copy)), edits):
        copy[position] = rng.choice(words)
    return copy


def planted_rows(seed: int = 0, n_unique: int = 1600, n_near: int = 200, n_exact: int = 100, n_hard: int = 100):
    """Unique random-word texts; near-duplicates (1-2 substitutions in 150 words: Jaccard of
    5-word shingles about 0.88-0.94); exact copies recased with extra spaces; hard negatives
    sharing a third to half of a text's words in place (Jaccard about 0.2-0.35). Returns the rows,
    the planted near (original, copy) pairs, the exact ones and the hard negatives, as row indices
    after shuffling."""
    rng = random.Random(seed)
    words = vocabulary(seed)
    texts = [sentence(rng, words, 150, 150) for _ in range(n_unique)]
    near, exact, hard, items = [], [], [], [" ".join(t) for t in texts]
    for k in range(n_near):
        items.append(" ".join(edited(rng, words, texts[k], 1 + k % 2)))
        near.append((k, len(items) - 1))
    for k in range(n_near, n_near + n_exact):
        items.append("  " + items[k].upper().replace(" ", "  ") + " ")
        exact.append((k, len(items) - 1))
    for k in range(n_near + n_exact, n_near + n_exact + n_hard):
        keep = rng.randint(50, 75)
        items.append(" ".join(texts[k][:keep] + sentence(rng, words, 150 - keep, 150 - keep)))
        hard.append((k, len(items) - 1))
    order = list(range(len(items)))
    rng.shuffle(order)
    where = {old: new for new, old in enumerate(order)}
    rows = [chat(items[old], "ok") for old in order]
    pairs = [[(where[a], where[b]) for a, b in group] for group in (near, exact, hard)]
    return rows, *pairs, [items[i] for i in order]


def _dedup(tmp_path, source, out, *extra):
    return main(["curate", "dedup", "--set", f"input={source}", "--out", str(out), *extra])


def test_planted_duplicates_found_with_recall_and_precision_at_least_095(tmp_path, capsys):
    rows, near, exact, hard, texts = planted_rows()
    similarities = [jaccard(texts[a], texts[b]) for a, b in near]
    assert 0.85 < min(similarities) and max(similarities) < 1  # all above the LSH threshold's knee
    assert max(jaccard(texts[a], texts[b]) for a, b in hard) < 0.5  # all well below it
    write_jsonl(tmp_path / "train.jsonl", rows)
    assert _dedup(tmp_path, tmp_path / "train.jsonl", tmp_path / "clean.jsonl") == 0
    report = read_jsonl(tmp_path / "clean.removed.jsonl")
    removed_exact = {r["row"] - 1 for r in report if r["filter"] == "exact_dedup"}
    removed_near = {r["row"] - 1 for r in report if r["filter"] == "near_dedup"}
    assert all(len(removed_exact & {a, b}) == 1 for a, b in exact) and len(removed_exact) == len(exact)
    found = sum(len(removed_near & {a, b}) == 1 for a, b in near)  # one of each pair removed, not both
    in_pairs = {i for pair in near for i in pair}
    recall, precision = found / len(near), len(removed_near & in_pairs) / max(len(removed_near), 1)
    print(
        f"near dedup: recall {recall:.3f} precision {precision:.3f} "
        f"(J {min(similarities):.2f}-{max(similarities):.2f}, threshold {lsh_threshold(14, 8):.3f})"
    )
    assert recall >= 0.95 and precision >= 0.95
    kept = read_jsonl(tmp_path / "clean.jsonl")
    assert kept == [row for i, row in enumerate(rows) if i not in removed_exact | removed_near]
    manifest = json.loads((tmp_path / "clean.manifest.json").read_text())
    assert manifest["lsh_threshold"] == pytest.approx(0.719, abs=1e-3)
    assert manifest["counts"]["removed_by"] == {"exact_dedup": len(removed_exact), "near_dedup": len(removed_near)}


def test_s_curve_formula():
    assert lsh_threshold(20, 5) == pytest.approx(0.05**0.2)
    assert collision_probability(0.5, 2, 2) == pytest.approx(1 - 0.75**2)


def test_parquet_shards_in_parquet_shards_out_over_several_tasks(tmp_path):
    import pyarrow
    import pyarrow.parquet as pq

    rows, near, exact, _, _ = planted_rows(seed=1, n_unique=150, n_near=20, n_exact=10, n_hard=0)
    (tmp_path / "in").mkdir()
    for k in range(3):
        part = [{**r, "score": float(i)} for i, r in enumerate(rows[k * 60 : (k + 1) * 60])]
        pq.write_table(pyarrow.Table.from_pylist(part), tmp_path / "in" / f"part-{k}.parquet")
    assert _dedup(tmp_path, tmp_path / "in", tmp_path / "out", "--set", "tasks=2") == 0
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["part-0.parquet", "part-1.parquet", "part-2.parquet"]
    kept = [row for name in names for row in pq.read_table(tmp_path / "out" / name).to_pylist()]
    assert pq.read_schema(tmp_path / "out" / names[0]) == pq.read_schema(tmp_path / "in" / names[0])
    assert len(kept) == len(rows) - len(near) - len(exact)


def test_a_row_of_no_record_kind_is_one_line_exit_2(tmp_path, capsys):
    write_jsonl(tmp_path / "train.jsonl", [chat("a b c d e f"), {"foo": 1}])
    assert _dedup(tmp_path, tmp_path / "train.jsonl", tmp_path / "clean.jsonl") == 2
    assert "train.jsonl: row 2: field '(kind)'" in capsys.readouterr().err.strip().splitlines()[-1]
