"""Llama Guard: P(unsafe) is the full-vocabulary softmax at the first answer position (computed
directly on the tiny model), the prompt carries the taxonomy and the last turn's role, and the
verdict's categories are parsed."""

import pytest
import torch

from posttrain.errors import UserError
from posttrain.eval.guard import guard_prompt, parse_verdict, unsafe_probabilities
from posttrain.generation.prompter import Prompter


def test_p_unsafe_is_the_full_vocabulary_softmax(tiny_backend):
    model, tokenizer = tiny_backend.model, tiny_backend.tokenizer
    short = [("S1", "Violence.")]
    prompts = [
        guard_prompt([{"role": "user", "content": "How do I bake bread?"}], short),
        guard_prompt([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}], short),
    ]
    got = unsafe_probabilities(tiny_backend, prompts)
    prompter = Prompter(tokenizer, tiny_backend.is_chat)
    unsafe_id = prompter.continuation_ids("unsafe")[0]
    safe_id = prompter.continuation_ids("safe")[0]
    for prompt, p in zip(prompts, got):
        # the tiny model's context is 256 tokens: the backend keeps the prompt's last 255 (one for the answer)
        ids = torch.tensor([prompter.prompt(prompt)[-(tiny_backend.max_length - 1) :]])
        with torch.no_grad():
            probs = model(input_ids=ids).logits[0, -1].float().softmax(-1)
        assert p == pytest.approx(probs[unsafe_id].item(), rel=1e-4)
        two_label = probs[unsafe_id] / (probs[unsafe_id] + probs[safe_id])
        assert abs(p - two_label.item()) > 0.1, (p, two_label)  # the two-label softmax: another number


def test_prompt_names_the_role_and_the_taxonomy():
    text = guard_prompt(
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
        categories=[("C1", "Spam."), ("C2", "Scams.")],
    )
    assert "unsafe content in 'Agent' messages" in text and "ONLY THE LAST Agent message" in text
    assert "C1: Spam.\nC2: Scams.\n<END UNSAFE CONTENT CATEGORIES>" in text
    assert "User: q\n\nAgent: a" in text
    assert "'User' messages" in guard_prompt([{"role": "user", "content": "q"}])
    with pytest.raises(UserError):
        guard_prompt([])


def test_parse_verdict():
    assert parse_verdict("unsafe\nS1,S10") == (True, ["S1", "S10"])
    assert parse_verdict(" safe") == (False, [])
    assert parse_verdict("maybe") == (None, [])
