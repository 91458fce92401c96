"""GRPO/PPO rollouts in the shared-prefix layout (data/rollout_layout.py): a group's completions in
one row after their prompt, and every completion token's log-prob, PPO value and gradient equal to
one row per completion (fp32, 1e-5)."""

import pytest
import torch
from transformers import LlamaForSequenceClassification

from posttrain.data.batching import IGNORE, Example, collate_padded
from posttrain.data.rollout_layout import group_layout, rollout_forward
from posttrain.model.logprobs import TokenLogprobs
from posttrain.model.value import ActorCritic, ValueModel
from tests.unit.objectives.test_shared_prefix import _model

# (prompt length, completion lengths of the group): G = 4, the last group cut short by the
# micro-batch as a micro-batch may cut a group
GROUPS = [(5, [3, 7, 1, 4]), (2, [9, 4, 4, 2]), (8, [1, 2, 6, 5]), (3, [6, 2])]


def _micro_batch(pack_length=None, shared=True):
    g = torch.Generator().manual_seed(7)
    ids = lambda n: torch.randint(3, 120, (n,), generator=g).tolist()  # noqa: E731
    rows, group_of = [], []
    for k, (p, lengths) in enumerate(GROUPS):
        prompt = ids(p)
        rows += [(prompt, ids(n)) for n in lengths]
        group_of += [k] * len(lengths)
    mb = collate_padded([Example(p + c, [IGNORE] * len(p) + c) for p, c in rows], pad_id=0)
    return {**mb, **group_layout(rows, group_of, 0, pack_length)} if shared else mb


def _run(module, mb):
    """Outputs and every parameter's gradient of a weighted sum over the labelled positions."""
    out = rollout_forward(module, mb)
    outs = out if isinstance(out, tuple) else (out,)
    mask = (mb["labels"] != IGNORE).float()
    weights = torch.linspace(0.5, 1.5, mask.numel()).view_as(mask) * mask
    sum((x * weights).sum() for x in outs).backward()
    return [x.detach() * mask for x in outs], {n: p.grad for n, p in module.named_parameters() if p.grad is not None}


def _assert_same(separate, shared):
    (sep_out, sep_grads), (sh_out, sh_grads) = separate, shared
    for a, b in zip(sep_out, sh_out, strict=True):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=0)
    assert sep_grads.keys() == sh_grads.keys() and sep_grads
    for name, grad in sep_grads.items():
        torch.testing.assert_close(sh_grads[name], grad, atol=1e-5, rtol=1e-5, msg=name)


@pytest.mark.parametrize("attn,pack_length", [("sdpa", None), ("eager", None), ("sdpa", 48)])
def test_group_rows_give_each_completion_its_own_rows_log_probs_and_gradients(attn, pack_length):
    mb = _micro_batch(pack_length)
    assert mb["shared_input_ids"].shape[0] == (len(GROUPS) if pack_length is None else 2)
    _assert_same(_run(TokenLogprobs(_model(attn)), _micro_batch(shared=False)), _run(TokenLogprobs(_model(attn)), mb))


def _critic(kind):
    policy = _model()
    if kind == "head":
        head = torch.nn.Linear(policy.config.hidden_size, 1)  # not zero: values must differ by position
        return ActorCritic(policy, value_head=head)
    config = _model().config
    config.num_labels = 1  # a critic's one score per position
    torch.manual_seed(1)
    return ActorCritic(policy, critic=ValueModel(LlamaForSequenceClassification(config)))


@pytest.mark.parametrize("kind", ["head", "critic"])
def test_ppo_values_and_log_probs_are_those_of_separate_rows(kind):
    separate, shared = _run(_critic(kind), _micro_batch(shared=False)), _run(_critic(kind), _micro_batch())
    assert separate[0][1].abs().max() > 1e-3  # the values are not trivially zero
    _assert_same(separate, shared)


def test_completions_that_could_see_each_other_would_differ():
    """Guards the tests above: one segment id for a whole group lets each completion see the
    group's earlier completions, and changes their log-probs."""
    mb = _micro_batch()
    merged = torch.where(mb["shared_segment_ids"] >= 0, mb["shared_segment_ids"].clamp(max=1), -1)
    policy = TokenLogprobs(_model())
    with torch.no_grad():
        right = rollout_forward(policy, mb)
        wrong = rollout_forward(policy, {**mb, "shared_segment_ids": merged})
    assert (wrong - right).abs().max() > 1e-3
