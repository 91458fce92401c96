"""The HF backend's answers are exactly what a plain forward pass and one-prompt-at-a-time greedy
decoding give, whatever the batching; request order is kept; over-long inputs are cut from the left."""

import torch

from posttrain.generation.backend import (
    GenerationRequest,
    HFBackend,
    LoglikelihoodRequest,
)

TEXTS = [
    ("Tom has 3 apples", " and gets 4 more."),
    ("What is 12 + 30?", " 42"),
    ("a", " b c d e f g h"),
    ("The answer is", " 7."),
    ("One by one the child counts numbers", " again"),
]


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
    cut = LoglikelihoodRequest(long_context[-(backend.max_length - 2) :], [9, 10])
    assert abs(backend.loglikelihood([request])[0].logprob - _direct(model, cut)) < 1e-5
    assert len(backend.generate([GenerationRequest(long_context, max_new_tokens=4)])) == 1


def test_vllm_backend_without_vllm_is_a_user_error():
    import importlib.util

    import pytest

    from posttrain.errors import UserError
    from posttrain.generation.vllm_backend import VLLMBackend

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed")
    with pytest.raises(UserError, match="needs vllm installed"):
        VLLMBackend("any/model")


def test_generate_tokens_are_what_generate_decodes(tiny_model):
    model, tokenizer = tiny_model
    requests = [GenerationRequest(tokenizer(c)["input_ids"], max_new_tokens=10) for c, _ in TEXTS]
    backend = HFBackend(model, tokenizer, batch_size=2, show_progress=False)
    ids = backend.generate_tokens(requests)
    assert all(0 < len(row) <= 10 and not set(row) & set(backend.eos_ids) for row in ids)
    assert tokenizer.batch_decode(ids, skip_special_tokens=True) == backend.generate(requests)


def test_sampled_tokens_follow_the_seed_argument(tiny_model):
    """Rollouts pass a seed per batch: the same seed repeats the samples, another changes them,
    and copies of one prompt in a call are sampled independently (a GRPO group)."""
    model, tokenizer = tiny_model
    prompt = tokenizer("Tom has 3 apples")["input_ids"]
    requests = [GenerationRequest(prompt, max_new_tokens=12, temperature=1.0)] * 6
    backend = HFBackend(model, tokenizer, batch_size=4, show_progress=False)
    first = backend.generate_tokens(requests, seed=1)
    assert backend.generate_tokens(requests, seed=1) == first
    assert backend.generate_tokens(requests, seed=2) != first
    assert len({tuple(row) for row in first}) > 1


def test_sync_weights_copies_another_models_weights(tiny_model):
    import copy

    model, tokenizer = tiny_model
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * torch.randn_like(p))
    backend = HFBackend(copy.deepcopy(model), tokenizer, show_progress=False)
    backend.sync_weights(other)
    assert all(torch.equal(a, b) for a, b in zip(backend.model.state_dict().values(), other.state_dict().values()))
    backend.sync_weights(backend.model)  # its own model: nothing to copy


def test_vllm_weight_sync_finds_the_engine_model():
    """The part of the vLLM backend's weight sync that runs without a GPU: where the engine keeps
    its model (two layouts across vLLM versions, else a clear error)."""
    from types import SimpleNamespace as NS

    import pytest

    from posttrain.errors import UserError
    from posttrain.generation.vllm_backend import _engine_model

    model = object()
    v1 = NS(llm_engine=NS(model_executor=NS(driver_worker=NS(worker=NS(model_runner=NS(model=model))))))
    v0 = NS(llm_engine=NS(model_executor=NS(driver_worker=NS(model_runner=NS(model=model)))))
    assert _engine_model(v1) is model and _engine_model(v0) is model
    with pytest.raises(UserError, match="grpo.backend: hf"):
        _engine_model(NS(llm_engine=NS()))
