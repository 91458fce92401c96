import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

from posttrain.data.batching import IGNORE
from posttrain.model.logprobs import TokenLogprobs, token_logprobs


def _model():
    torch.manual_seed(0)
    return LlamaForCausalLM(
        LlamaConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=64,
            vocab_size=97,
            max_position_embeddings=64,
        )
    )


def _batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 97, (3, 11), generator=g)
    labels = ids.clone()
    labels[0, :4] = IGNORE  # a prompt
    labels[2, 7:] = IGNORE  # padding
    return ids, labels


def _reference(model, ids, labels):
    """The plain computation: full logits, log-softmax over the vocabulary, gather."""
    logits = model(ids).logits[:, :-1].float()
    logp = torch.log_softmax(logits, -1)
    targets = labels[:, 1:]
    picked = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    out = torch.zeros(labels.shape)
    out[:, 1:] = torch.where(targets != IGNORE, picked, torch.zeros_like(picked))
    return out


def test_chunked_logprobs_equal_full_logits_in_value_and_gradient():
    model, (ids, labels) = _model(), _batch()
    expected = _reference(model, ids, labels)
    expected.sum().backward()
    expected_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    got = token_logprobs(model, ids, labels, chunk_size=4)  # several chunks, one ragged
    got.sum().backward()
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    for p, g in zip(model.parameters(), expected_grads):
        torch.testing.assert_close(p.grad, g, atol=1e-5, rtol=1e-5)


def test_ignored_positions_are_zero_and_wrapper_matches():
    model, (ids, labels) = _model(), _batch()
    with torch.no_grad():
        got = TokenLogprobs(model, chunk_size=1000)(ids, labels)
        assert (got[0, :4] == 0).all() and (got[2, 7:] == 0).all() and (got[:, 0] == 0).all()
        one = -F.cross_entropy(model(ids).logits[1, 4], ids[1, 5])
        torch.testing.assert_close(got[1, 5], one, atol=1e-5, rtol=1e-5)


def test_fused_head_for_summed_losses_equals_the_plain_computation():
    """The NLL path forms the head's gradient in the forward pass; value and gradients must equal
    full logits + log-softmax, for a scaled sum of log-probs (what the loop backpropagates)."""
    model, (ids, labels) = _model(), _batch()
    expected = _reference(model, ids, labels)
    (expected.sum() * -0.37).backward()
    expected_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    got = token_logprobs(model, ids, labels, chunk_size=4, summed=True)
    (got.sum() * -0.37).backward()
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    for p, g in zip(model.parameters(), expected_grads):
        torch.testing.assert_close(p.grad, g, atol=1e-5, rtol=1e-5)


def test_fused_head_refuses_a_non_uniform_upstream_gradient():
    import pytest

    model, (ids, labels) = _model(), _batch()
    got = token_logprobs(model, ids, labels, summed=True)
    with pytest.raises(RuntimeError, match="one upstream gradient"):
        (got * torch.rand_like(got)).sum().backward()


def test_recomputed_head_takes_any_upstream_gradient_and_equals_full_logits():
    """Preference and policy-gradient losses weigh each token differently: the recomputing head's
    gradients must equal autograd through full logits for an arbitrary upstream gradient."""
    model, (ids, labels) = _model(), _batch()
    weights = torch.randn(labels.shape, generator=torch.Generator().manual_seed(5))
    expected = _reference(model, ids, labels)
    (expected * weights).sum().backward()
    expected_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    got = token_logprobs(model, ids, labels, chunk_size=4)
    (got * weights).sum().backward()
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    for p, g in zip(model.parameters(), expected_grads):
        torch.testing.assert_close(p.grad, g, atol=1e-5, rtol=1e-5)


def test_head_functions_by_hand_on_a_two_word_vocabulary():
    """hidden h = [1], head rows w = [[0], [ln 3]]: logits [0, ln 3], p = [1/4, 3/4]; for target 0,
    log p = ln(1/4) and d/dh = (onehot - p) @ W = -(3/4) ln 3, d/dW = (onehot - p)^T h = [3/4, -3/4]."""
    from posttrain.model.fused_head import RecomputedLogprobHead, SummedLogprobHead

    for fn in (RecomputedLogprobHead, SummedLogprobHead):
        h = torch.ones(1, 1, requires_grad=True)
        w = torch.tensor([[0.0], [torch.log(torch.tensor(3.0)).item()]], requires_grad=True)
        out = fn.apply(h, w, torch.tensor([0]), 1)
        (2.0 * out).sum().backward()
        torch.testing.assert_close(out, torch.log(torch.tensor([0.25])))
        torch.testing.assert_close(h.grad, 2.0 * torch.tensor([[-0.75 * torch.log(torch.tensor(3.0)).item()]]))
        torch.testing.assert_close(w.grad, 2.0 * torch.tensor([[0.75], [-0.75]]))


def test_bf16_head_matches_the_plain_bf16_computation():
    model, (ids, labels) = _model(), _batch()
    model = model.to(torch.bfloat16)
    weights = torch.randn(labels.shape, generator=torch.Generator().manual_seed(6))
    expected = _reference(model, ids, labels)
    (expected * weights).sum().backward()
    expected_head = model.lm_head.weight.grad.float().clone()
    model.zero_grad()
    got = token_logprobs(model, ids, labels, chunk_size=4)
    (got * weights).sum().backward()
    torch.testing.assert_close(got, expected, atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(model.lm_head.weight.grad.float(), expected_head, atol=2e-2, rtol=5e-2)


def test_recomputed_head_rebuilds_the_logits_under_the_forwards_autocast():
    """Under autocast the forward's logits come from a bf16 matmul; backward (often called outside
    the autocast block) must rebuild the same ones, and so match the checkpointed plain path."""
    from posttrain.model.fused_head import RecomputedLogprobHead

    torch.manual_seed(3)
    weight = torch.randn(50, 8, requires_grad=True)
    hidden = torch.randn(6, 8, dtype=torch.bfloat16, requires_grad=True)
    targets = torch.randint(0, 50, (6,))
    upstream = torch.randn(6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = RecomputedLogprobHead.apply(hidden, weight, targets, 4)
        plain = -F.cross_entropy((hidden @ weight.T).float(), targets, reduction="none")
    expected = torch.autograd.grad((plain * upstream).sum(), (hidden, weight))
    got = torch.autograd.grad((out * upstream).sum(), (hidden, weight))  # outside autocast
    torch.testing.assert_close(out, plain)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a.float(), b.float(), atol=2e-2, rtol=2e-2)
