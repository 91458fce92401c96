"""Issue 30 item 3: max_new_tokens at or above the model's context must not cut every prompt to
its last token; the new tokens are capped to what the context leaves, with a warning saying so."""

import logging

import pytest

from posttrain.generation import backend as backend_module
from posttrain.generation.backend import GenerationRequest, HFBackend


@pytest.fixture
def seen(monkeypatch):
    """The prompts and max_new_tokens that reach generate_ids (then the real generation runs)."""
    calls = []
    real = backend_module.generate_ids

    def recording(model, prompts, pad_id, eos_ids, cfg, on_batch=None):
        calls.append(([list(p) for p in prompts], cfg.max_new_tokens))
        return real(model, prompts, pad_id, eos_ids, cfg, on_batch=on_batch)

    monkeypatch.setattr(backend_module, "generate_ids", recording)
    return calls


@pytest.mark.parametrize("extra", [0, 1, 1000])
def test_new_tokens_are_capped_to_the_room_the_prompt_leaves(tiny_model, seen, caplog, extra):
    model, tokenizer = tiny_model
    backend = HFBackend(model, tokenizer, show_progress=False)
    prompt = tokenizer("Tom has 3 apples and gets 4 more.", add_special_tokens=False)["input_ids"]
    with caplog.at_level(logging.WARNING):
        done = backend.complete([GenerationRequest(prompt, backend.max_length + extra)])
    assert seen == [([prompt], backend.max_length - len(prompt))]  # the whole prompt, the room left
    assert done[0].num_tokens <= backend.max_length - len(prompt)
    assert any(f"capped to {backend.max_length - len(prompt)}" in r.getMessage() for r in caplog.records)


def test_prompts_that_fit_are_untouched_and_a_too_long_one_keeps_half_the_context(tiny_model, seen):
    model, tokenizer = tiny_model
    backend = HFBackend(model, tokenizer, show_progress=False)
    short, long = [5, 6, 7], list(range(3, 3 + backend.max_length + 10))
    backend.generate_tokens([GenerationRequest(short, 4), GenerationRequest(long, backend.max_length)])
    assert ([short], 4) in seen
    cut = [(p, n) for p, n in seen if p != [short]]
    assert cut == [([long[-(backend.max_length - backend.max_length // 2) :]], backend.max_length // 2)]
