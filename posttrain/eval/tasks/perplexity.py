"""Perplexity of text under the model, with a sliding window.

A document longer than the window is scored in windows at most `window` tokens wide, each
`stride` tokens further on; a window scores only the tokens no earlier window scored, so every
token is scored once, with at least window - stride tokens of context (1 <= stride < window; a
larger stride is cheaper, a smaller one gives every token more context).
The first token (BOS, when the tokenizer has one) is context only.
  perplexity     exp(total NLL / scored tokens), over all documents together
  bits_per_byte  total NLL / ln 2 / UTF-8 bytes: comparable across tokenizers
  empty_documents  documents with no token to score (empty text): counted, not scored; data with
                 no text at all is an error (its perplexity would read as a perfect 1.0)
"""

from __future__ import annotations

from posttrain.errors import UserError
from posttrain.eval.metrics import Metric
from posttrain.eval.sample import Sample
from posttrain.eval.tasks.context import TaskContext
from posttrain.generation.backend import LoglikelihoodRequest

METRICS = [
    Metric("perplexity", "perplexity", higher_is_better=False),
    Metric("bits_per_byte", "bits_per_byte", higher_is_better=False),
    Metric("empty_documents", "count", higher_is_better=False),
]


def metrics(task) -> list[Metric]:
    return METRICS


def windows(ids: list[int], window: int, stride: int) -> list[LoglikelihoodRequest]:
    """(context, newly scored tokens) per window; together they score ids[1:] exactly once. The
    first window scores all it holds; each later one scores up to `stride` new tokens after at
    least window - stride tokens of context."""
    if window < 2 or not 1 <= stride < window:
        raise UserError(f"perplexity needs window >= 2 and 1 <= stride < window (got {window}, {stride})")
    requests, scored_to, end = [], 1, min(window, len(ids))
    while scored_to < len(ids):
        requests.append(LoglikelihoodRequest(ids[max(0, end - window) : scored_to], ids[scored_to:end]))
        scored_to, end = end, min(end + stride, len(ids))
    return requests


def _token_ids(tokenizer, text: str) -> list[int]:
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return ([tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []) + ids


def run(task, docs: list[dict], pool: list[dict], ctx: TaskContext) -> list[Sample]:
    window = task.window or ctx.backend.max_length
    stride = task.stride or max(1, window // 2)
    requests, spans = [], []
    for doc in docs:
        parts = windows(_token_ids(ctx.backend.tokenizer, doc["text"]), window, stride)
        spans.append((len(requests), len(parts)))
        requests += parts
    if not requests:
        raise UserError(f"{task.data or task.name}: no text to score: the file is empty or every document is")
    results = ctx.backend.loglikelihood(requests, desc=f"{task.name}: loglikelihood")
    samples = []
    for doc, (start, count) in zip(docs, spans):
        scored = results[start : start + count]
        logprob, n_tokens = sum(r.logprob for r in scored), sum(r.n_tokens for r in scored)
        extra = {"logprob": logprob, "n_tokens": n_tokens, "n_bytes": len(doc["text"].encode("utf-8"))}
        scores = (
            {"nll_per_token": -logprob / n_tokens, "empty_documents": 0.0} if n_tokens else {"empty_documents": 1.0}
        )
        samples.append(Sample(task.name, doc["_id"], doc["text"][:200], "", extra=extra, scores=scores))
    return samples
