"""The HF backend's answers are exactly what a plain forward pass and one-prompt-at-a-time greedy
decoding give, whatever the batching; request order is kept; over-long inputs are cut from the left."""

import torch

from posttrain.eval.backend import GenerationRequest, HFBackend, LoglikelihoodRequest

TEXTS = [("Tom has 3 apples", " and gets 4 more."), ("What is 12 + 30?", " 42"),
         ("a", " b c d e f g h"), ("The answer is", " 7."), ("One by one the child counts numbers", " again")]


def _requests(tokenizer):
    def ids(text):
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    return [LoglikelihoodRequest([tokenizer.bos_token_id] + ids(c), ids(x)) for c, x in TEXTS]


def _direct(model, request):
    """Full logits of one unpadded sequence, log-softmax, gather: no batching, no chunking."""
    ids = torch.tensor([request.context + request.continuation])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0].float(), -1)
    start = len(request.context)
    return sum(logp[t - 1, ids[0, t]].item() for t in range(start, ids.shape[1]))


def test_loglikelihood_equals_a_direct_forward_pass(tiny_model):
    model, tokenizer = tiny_model
    requests = _requests(tokenizer)
    results = HFBackend(model, tokenizer, batch_size=3, show_progress=False).loglikelihood(requests)
    for request, result in zip(requests, results):
        assert abs(result.logprob - _direct(model, request)) < 1e-5
        assert result.n_tokens == len(request.continuation)


def test_loglikelihood_does_not_depend_on_batch_size(tiny_model):
    model, tokenizer = tiny_model
    requests = _requests(tokenizer)
    one = HFBackend(model, tokenizer, batch_size=1, show_progress=False).loglikelihood(requests)
    many = HFBackend(model, tokenizer, batch_size=16, show_progress=False).loglikelihood(requests)
    assert max(abs(a.logprob - b.logprob) for a, b in zip(one, many)) < 1e-5


def test_batched_and_unbatched_greedy_generation_agree(tiny_model):
    model, tokenizer = tiny_model
    prompts = [tokenizer(c)["input_ids"] for c, _ in TEXTS]
    requests = [GenerationRequest(p, max_new_tokens=12) for p in prompts]
    model.train()
    batched = HFBackend(model, tokenizer, batch_size=8, show_progress=False).generate(requests)
    assert model.training  # mode restored
    single = HFBackend(model, tokenizer, batch_size=1, show_progress=False).generate(requests)
    assert batched == single
    assert len(set(batched)) > 1  # different prompts, different outputs: order was kept
    model.eval()


def test_over_long_inputs_keep_their_last_tokens(tiny_model):
    model, tokenizer = tiny_model
    backend = HFBackend(model, tokenizer, batch_size=2, show_progress=False)
    long_context = [tokenizer.bos_token_id] + [7] * (backend.max_length + 20)
    request = LoglikelihoodRequest(long_context, [9, 10])
    cut = LoglikelihoodRequest(long_context[-(backend.max_length - 2):], [9, 10])
    assert abs(backend.loglikelihood([request])[0].logprob - _direct(model, cut)) < 1e-5
    assert len(backend.generate([GenerationRequest(long_context, max_new_tokens=4)])) == 1


def test_vllm_backend_without_vllm_is_a_user_error():
    import importlib.util

    import pytest

    from posttrain.errors import UserError
    from posttrain.eval.vllm_backend import VLLMBackend

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed")
    with pytest.raises(UserError, match="needs vllm installed"):
        VLLMBackend("any/model")
