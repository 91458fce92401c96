"""Sliding-window perplexity scores every token once, and its numbers are those of direct forward
passes over the same windows."""

import math

import pytest
import torch

from posttrain.eval.engine import run_task
from posttrain.eval.tasks.builtin import resolve_task
from posttrain.eval.tasks.perplexity import windows
from posttrain.generation.backend import HFBackend

TEXT = "The child counts apples every day. 47 + 38 = 85. The word seven is about numbers, and 12 is a number."


@pytest.mark.parametrize("length, window, stride", [(10, 4, 1), (10, 4, 3), (37, 8, 5), (3, 8, 4), (9, 9, 8)])
def test_windows_score_every_token_once_with_context(length, window, stride):
    ids = list(range(length))
    requests = windows(ids, window, stride)
    scored = [t for r in requests for t in r.continuation]
    assert scored == ids[1:]
    for r in requests:
        assert r.context and len(r.context) + len(r.continuation) <= window
        assert r.context + r.continuation == ids[r.context[0] : r.continuation[-1] + 1]
    assert all(len(r.context) >= window - stride for r in requests[1:])


def _direct_logprob(model, ids):
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
    return [logp[t - 1, ids[t]].item() for t in range(1, len(ids))]


def test_perplexity_equals_direct_computation(tiny_model, tmp_path):
    model, tokenizer = tiny_model
    path = tmp_path / "doc.txt"
    path.write_text(TEXT)
    ids = [tokenizer.bos_token_id] + tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    backend = HFBackend(model, tokenizer, batch_size=4, show_progress=False)

    whole = run_task(resolve_task("perplexity", [f"data={path}"]), backend)
    expected = _direct_logprob(model, ids)
    assert whole.values()["perplexity"] == pytest.approx(math.exp(-sum(expected) / len(expected)), rel=1e-5)
    nats = -sum(expected)
    assert whole.values()["bits_per_byte"] == pytest.approx(nats / math.log(2) / len(TEXT.encode()), rel=1e-5)

    sliding = run_task(resolve_task("perplexity", [f"data={path}", "window=12", "stride=5"]), backend)
    by_window = sum(
        _direct_logprob(model, r.context + r.continuation)[-len(r.continuation) :][i]
        for r in windows(ids, 12, 5)
        for i in range(len(r.continuation))
    )
    assert sliding.samples[0].extra["logprob"] == pytest.approx(by_window, abs=1e-4)
    assert sliding.samples[0].extra["n_tokens"] == len(ids) - 1


def test_empty_documents_are_counted_and_an_empty_file_is_an_error(tiny_model, tmp_path):
    from posttrain.errors import UserError

    model, tokenizer = tiny_model
    backend = HFBackend(model, tokenizer, batch_size=4, show_progress=False)
    rows = tmp_path / "docs.jsonl"
    rows.write_text('{"text": "The cat sat."}\n{"text": ""}\n{"text": "A dog ran."}\n')
    result = run_task(resolve_task("perplexity", [f"data={rows}"]), backend)
    assert result.values()["empty_documents"] == 1.0
    scored = [s for s in result.samples if s.extra["n_tokens"]]
    nll = -sum(s.extra["logprob"] for s in scored) / sum(s.extra["n_tokens"] for s in scored)
    assert len(scored) == 2 and result.values()["perplexity"] == pytest.approx(math.exp(nll))
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(UserError, match="empty.txt: no text to score"):
        run_task(resolve_task("perplexity", [f"data={empty}"]), backend)
