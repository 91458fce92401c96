import random

import numpy as np
import pytest

from posttrain.data import cache
from posttrain.data.batching import Example
from posttrain.data.prepare import split_holdout
from posttrain.data.table import ExampleTable, chain, take

EXAMPLES = [
    Example([1, 2, 3], [-100, 2, 3]),
    Example([7], [7]),
    Example([300, 40000], [-100, 40000]),
    Example([5, 6], [5, 6]),
]


def _table(examples=EXAMPLES):
    return ExampleTable(
        np.array([t for e in examples for t in e.input_ids], dtype=np.int32),
        np.array([t for e in examples for t in e.labels], dtype=np.int32),
        np.array([len(e) for e in examples], dtype=np.int64),
    )


def test_table_items_are_the_examples_as_python_lists():
    table = _table()
    assert table == EXAMPLES and list(table) == EXAMPLES and len(table) == 4
    assert table[-1] == EXAMPLES[-1] and table[1:3] == EXAMPLES[1:3] and table[::2] == EXAMPLES[::2]
    assert all(type(t) is int for t in table[2].input_ids)  # what collate and packing expect
    assert table.documents() == [e.input_ids for e in EXAMPLES]
    with pytest.raises(IndexError):
        table[4]


def test_views_select_and_chain_without_copying_tokens():
    table = _table()
    assert take(table, [3, 0]) == [EXAMPLES[3], EXAMPLES[0]] and take(table, [3, 0]).base is table
    assert take(EXAMPLES, [3, 0]) == [EXAMPLES[3], EXAMPLES[0]]  # a list stays a list
    both = chain([table, _table([]), _table(EXAMPLES[:2])])
    assert both == EXAMPLES + EXAMPLES[:2] and both[4] == EXAMPLES[0] and both[-1] == EXAMPLES[1]
    assert chain([table]) is table


def test_holdout_and_pack_shuffle_pick_what_they_picked_from_lists():
    many = [Example([i, i + 1], [i, i + 1]) for i in range(50)]
    table = _table(many)
    assert split_holdout(table, 0.2, seed=3) == split_holdout(many, 0.2, seed=3)
    shuffled = list(many)
    random.Random("1/pack").shuffle(shuffled)
    order = list(range(len(table)))
    random.Random("1/pack").shuffle(order)  # what sft does with a table
    assert take(table, order) == shuffled


def test_cached_examples_are_memory_mapped_views(tmp_path, monkeypatch):
    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path))
    built = cache.cached_examples("k", lambda: EXAMPLES)  # cold: written, then mapped
    warm = cache.cached_examples("k", lambda: pytest.fail("rebuilt"))
    for table in (built, warm):
        assert table == EXAMPLES and isinstance(table.input_ids, np.memmap)
        assert isinstance(table.labels, np.memmap) and not table.input_ids.flags.writeable


def test_unwritable_cache_keeps_the_examples_in_memory(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("POSTTRAIN_CACHE", str(blocker))  # the cache directory would be under a file
    table = cache.cached_examples("k", lambda: EXAMPLES)
    assert table == EXAMPLES and not isinstance(table.input_ids, np.memmap)
