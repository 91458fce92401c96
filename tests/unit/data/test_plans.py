import itertools

import pytest

from posttrain.data.plans import EpochPlan, Layout, StreamPlan, eval_micro_batches
from posttrain.errors import UserError


def _ids(mb):
    return mb  # collate that keeps the units, to look at which units were chosen


def _flat(step):
    return [u for mb in step for u in mb]


def test_layout_slices_a_global_batch_by_rank_then_micro_batch():
    units = list(range(12))
    assert Layout(2, 3, world_size=2, rank=0).local_micro_batches(units) == [[0, 1], [2, 3], [4, 5]]
    assert Layout(2, 3, world_size=2, rank=1).local_micro_batches(units) == [[6, 7], [8, 9], [10, 11]]


def test_epoch_plan_covers_each_example_once_per_epoch_and_reshuffles():
    plan = EpochPlan(list(range(16)), _ids, Layout(2, 2), seed=0, max_steps=None, epochs=2)
    steps = list(plan.steps())
    assert plan.total_steps == 8
    first, second = sum(map(_flat, steps[:4]), []), sum(map(_flat, steps[4:]), [])
    assert sorted(first) == sorted(second) == list(range(16)) and first != second


def test_resuming_at_step_k_gives_the_same_batches():
    plan = EpochPlan(list(range(20)), _ids, Layout(3, 2), seed=5, max_steps=9, epochs=1)
    assert list(plan.steps(4)) == list(plan.steps())[4:]
    stream = StreamPlan(lambda: itertools.count(), _ids, Layout(2, 2), total_steps=6)
    assert list(stream.steps(3)) == list(stream.steps())[3:]


def test_two_processes_see_the_same_global_batch_as_one():
    one = EpochPlan(list(range(32)), _ids, Layout(4, 2), seed=1, max_steps=3, epochs=1)
    ranks = [EpochPlan(list(range(32)), _ids, Layout(2, 2, 2, r), seed=1, max_steps=3, epochs=1) for r in range(2)]
    for single, r0, r1 in zip(one.steps(), *(p.steps() for p in ranks)):
        assert sorted(_flat(single)) == sorted(_flat(r0) + _flat(r1))


def test_too_little_data_for_one_global_batch_is_a_user_error():
    with pytest.raises(UserError, match="3 examples, fewer than one global batch"):
        EpochPlan([1, 2, 3], _ids, Layout(2, 2), seed=0, max_steps=None, epochs=1)


def test_eval_units_are_split_round_robin():
    assert eval_micro_batches(list(range(5)), _ids, Layout(2, 1, 2, 1)) == [[1, 3]]


def test_length_grouping_keeps_each_epoch_complete_and_pads_less():
    lengths = [((i * 37) % 50) + 1 for i in range(64)]
    layout = Layout(4, 2)
    grouped = EpochPlan(list(range(64)), _ids, layout, seed=0, max_steps=None, epochs=1, lengths=lengths)
    plain = EpochPlan(list(range(64)), _ids, layout, seed=0, max_steps=None, epochs=1)

    def padding(plan):
        return sum(
            len(mb) * max(lengths[i] for i in mb) - sum(lengths[i] for i in mb) for step in plan.steps() for mb in step
        )

    assert sorted(sum(map(_flat, grouped.steps()), [])) == list(range(64))
    assert padding(grouped) < padding(plain) / 3
    assert list(grouped.steps(3)) == list(grouped.steps())[3:]  # still exact on resume
