"""KTO packed (data.pack, data/unpaired.py): several examples per row with no attention across them,
and every example's log-prob, gradient, reference log-prob and step loss equal to one row per
example (fp32, 1e-5)."""

import functools

import pytest
import torch
from accelerate import Accelerator

from posttrain.config.recipe import Recipe
from posttrain.data.batching import IGNORE, Example
from posttrain.data.unpaired import (
    UnpairedExample,
    collate_unpaired,
    collate_unpaired_reference,
)
from posttrain.model.logprobs import TokenLogprobs
from posttrain.model.reference import precompute_reference_logps
from posttrain.objectives.pairwise import UnpairedObjective, example_logps
from posttrain.objectives.preference import PreferenceConfig
from posttrain.train.loop import TrainJob, accumulate_gradients
from tests.unit.objectives.test_shared_prefix import _model

# (prompt length, completion length, mismatched completion length)
SHAPES = [(5, 3, 7), (2, 9, 4), (8, 1, 2), (3, 6, 6), (6, 4, 1), (4, 2, 8), (7, 5, 3), (1, 3, 2)]
PACK = 24


def _examples():
    g = torch.Generator().manual_seed(5)
    ids = lambda n: torch.randint(3, 120, (n,), generator=g).tolist()  # noqa: E731
    out = []
    for k, (p, c, m) in enumerate(SHAPES):
        prompt = ids(p)
        ex = UnpairedExample([], [], desirable=k % 3 != 0)
        ex.matched = Example(prompt + (c_ids := ids(c)), [IGNORE] * p + c_ids)
        ex.mismatched = Example(prompt + (m_ids := ids(m)), [IGNORE] * p + m_ids)
        ex.ref_logps = {"matched": -20.0 - k, "mismatched": -22.0 + k / 2}
        out.append(ex)
    return out


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("mismatched", [False, True])
def test_packed_examples_equal_one_row_each_in_values_and_gradients(attn, mismatched):
    examples = _examples()
    results = []
    for pack_length in (None, PACK):
        model = _model(attn)
        mb = collate_unpaired(examples, pad_id=0, pack_length=pack_length)
        logps = example_logps(TokenLogprobs(model), mb, mismatched=mismatched)
        (logps * torch.linspace(0.5, 1.5, logps.shape[0])).sum().backward()  # every example's gradient
        results.append((logps.detach(), {n: p.grad for n, p in model.named_parameters()}, mb))
    (rows, row_grads, _), (packed, packed_grads, mb) = results
    assert packed.shape == (len(examples),)
    torch.testing.assert_close(packed, rows, atol=1e-5, rtol=0)
    for name, grad in row_grads.items():
        torch.testing.assert_close(packed_grads[name], grad, atol=1e-5, rtol=1e-5, msg=name)
    key = "kl_input_ids" if mismatched else "input_ids"
    assert 1 < mb[key].shape[0] < len(examples) and mb[key].shape[1] <= PACK  # several per row


def test_packed_examples_that_could_see_each_other_would_differ():
    """Guards the test above: with one segment id for every example of a row, later examples would
    attend to earlier ones and their log-probs would change."""
    mb = collate_unpaired(_examples(), pad_id=0, pack_length=PACK)
    policy = TokenLogprobs(_model())
    with torch.no_grad():
        right = example_logps(policy, mb, mismatched=False)
        merged = torch.where(mb["segment_ids"] >= 0, 1, -1)
        wrong = example_logps(
            policy, {**mb, "segment_ids": merged, "position_ids": mb["position_ids"]}, mismatched=False
        )
    assert (wrong.sum() - right.sum()).abs() > 1e-3


def test_reference_log_probs_are_equal_in_the_packed_layout():
    model = _model().eval()
    got = []
    for collate in (
        functools.partial(collate_unpaired, pad_id=0),
        functools.partial(collate_unpaired_reference, pad_id=0, pack_length=2 * PACK),
    ):
        examples = _examples()
        precompute_reference_logps(model, examples, collate, ("matched", "mismatched"), 3, torch.device("cpu"))
        got.append(torch.tensor([[e.ref_logps[k] for k in ("matched", "mismatched")] for e in examples]))
    torch.testing.assert_close(got[1], got[0], atol=1e-5, rtol=0)
    assert not torch.equal(got[0][:, 0], torch.arange(len(SHAPES)) * -1.0 - 20.0)  # recomputed


def _kto_step(micro_batch_size, pack_length):
    model = _model()
    policy = TokenLogprobs(model)
    examples = _examples()
    micro_batches = [
        collate_unpaired(examples[i : i + micro_batch_size], pad_id=0, pack_length=pack_length)
        for i in range(0, len(examples), micro_batch_size)
    ]
    objective = UnpairedObjective(PreferenceConfig(beta=0.5))
    job = TrainJob(
        recipe=Recipe(),
        out_dir=None,
        accelerator=Accelerator(cpu=True),
        policy=policy,
        tokenizer=None,
        plan=None,
        objective=objective,
    )
    stats = accumulate_gradients(job, policy, micro_batches)
    return float(stats["loss"]), float(objective.z0), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_kto_step_is_the_same_packed_and_with_accumulation():
    """The loss unit stays the example and z0 the whole step's: one batch of 8 rows, and 8, 3 or 2
    examples per packed micro-batch give one loss, one z0 and one gradient."""
    base_loss, base_z0, base_grads = _kto_step(8, None)
    assert base_z0 > 0  # the reference values above make the KL estimate non-trivial
    for micro_batch_size in (8, 3, 2):
        loss, z0, grads = _kto_step(micro_batch_size, PACK)
        assert abs(loss - base_loss) < 1e-5 and abs(z0 - base_z0) < 1e-5
        for name, grad in base_grads.items():
            torch.testing.assert_close(grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)
