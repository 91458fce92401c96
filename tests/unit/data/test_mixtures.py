from collections import Counter
from itertools import islice

from posttrain.data.mixtures import SourceCursor, mixture_rows, weights_at


def _docs(tag: int, n: int = 50):
    return [[tag] * 3 for _ in range(n)]  # documents of 3 tokens, all tokens = source tag


def _source_shares(rows):
    counts = Counter(t for row in rows for t in row.input_ids)
    total = sum(counts.values())
    return {tag: counts[tag] / total for tag in counts}


def test_weights_follow_the_sources():
    rows = list(
        islice(
            mixture_rows(
                {"a": _docs(1), "b": _docs(2)}, [(None, {"a": 3, "b": 1})], rows_per_step=4, length=12, seed=0
            ),
            400,
        )
    )
    shares = _source_shares(rows)
    assert abs(shares[1] - 0.75) < 0.03 and abs(shares[2] - 0.25) < 0.03


def test_phases_switch_weights_at_their_step_boundary():
    schedule = [(10, {"a": 1.0, "b": 0.0}), (None, {"a": 0.0, "b": 1.0})]
    rows = list(islice(mixture_rows({"a": _docs(1), "b": _docs(2)}, schedule, rows_per_step=2, length=6, seed=0), 40))
    assert _source_shares(rows[:20]) == {1: 1.0}  # steps 0-9: 2 rows each, all from a
    assert _source_shares(rows[21:]) == {2: 1.0}  # after the boundary row, all from b
    assert weights_at(schedule, 9) == {"a": 1.0, "b": 0.0} and weights_at(schedule, 10)["b"] == 1.0


def test_mixture_is_deterministic_given_the_seed():
    def first(seed):
        docs = {"a": [[i, i] for i in range(30)], "b": [[100 + i] for i in range(30)]}
        return [r.input_ids for r in islice(mixture_rows(docs, [(None, {"a": 1, "b": 1})], 2, 8, seed), 20)]

    assert first(0) == first(0) and first(0) != first(1)


def test_cursor_visits_every_document_once_per_pass():
    cursor = SourceCursor([[i] for i in range(7)], seed=3, name="x")
    first_pass = [cursor.next()[0] for _ in range(7)]
    second_pass = [cursor.next()[0] for _ in range(7)]
    assert sorted(first_pass) == sorted(second_pass) == list(range(7))
    assert first_pass != second_pass  # reshuffled
