"""Accuracy and K/V memory of each eviction policy on retrieval items (needle.py rows).

An item is solved when the greedy answer after a chunked, evicting prefill of its prompt equals
the answer's tokens exactly. Memory is the bytes of key/value tensors the DynamicCache holds:
the peak during prefill (budget + one chunk) and after prefill (the budget), averaged over items.
"""

from __future__ import annotations

import torch

from posttrain.inference.kv_eviction.policies import Policy, check_policy
from posttrain.inference.kv_eviction.prefill import chunked_prefill, greedy_answer


def encode_items(tokenizer, items: list[dict]) -> list[tuple[list[int], list[int]]]:
    """(prompt ids with one BOS, answer ids) per item; a prompt already formatted as chat starts
    with the BOS text itself. The answer is tokenised on its own (the needle's answers are single
    word tokens, identical inside the full text)."""
    return [
        (
            tokenizer(item["prompt"], add_special_tokens=not item["prompt"].startswith(tokenizer.bos_token)).input_ids,
            tokenizer(item["answer"], add_special_tokens=False).input_ids,
        )
        for item in items
    ]


def evaluate_policy(
    model, encoded: list[tuple[list[int], list[int]]], policy: Policy, chunk: int, heads=None, progress: bool = False
) -> dict:
    """Exact-match accuracy and mean K/V bytes of `policy` over the encoded items."""
    from tqdm import tqdm

    check_policy(policy, min(len(p) for p, _ in encoded))
    solved, peak, held, full = 0, 0, 0, 0
    for prompt, answer in tqdm(encoded, desc=policy.method, disable=not progress):
        result = chunked_prefill(model, torch.tensor([prompt]), policy, chunk, heads=heads)
        solved += greedy_answer(model, result, len(prompt), len(answer)) == answer
        peak, held = peak + result.peak_bytes, held + result.held_bytes
        full += _full_cache_bytes(model, len(prompt))
    n = len(encoded)
    return {
        "method": policy.method,
        "budget": policy.budget,
        "sinks": policy.sinks,
        "recent": policy.recent,
        "chunk": chunk,
        "items": n,
        "accuracy": solved / n,
        "kv_bytes_peak": peak / n,
        "kv_bytes_after_prefill": held / n,
        "kv_fraction_of_full": held / full,
    }


def _full_cache_bytes(model, tokens: int) -> int:
    """K/V bytes of a full cache of `tokens` tokens (2 tensors x layers x kv_heads x head_dim)."""
    c = model.config
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    return 2 * c.num_hidden_layers * c.num_key_value_heads * head_dim * tokens * model.dtype.itemsize


def policies_at(budget: int, sinks: int, recent: int, methods: tuple[str, ...], seed: int = 0) -> list[Policy]:
    """The compared methods at one budget: StreamingLLM keeps `sinks` + (budget - sinks) recent
    tokens; H2O, Locret and random keep `recent` newest tokens plus their top-scoring others."""
    made = []
    for method in methods:
        if method == "full":
            made.append(Policy("full"))
        elif method == "streaming":
            made.append(Policy("streaming", budget, sinks, budget - sinks))
        else:
            made.append(Policy(method, budget, 0, recent, seed))
    return made
