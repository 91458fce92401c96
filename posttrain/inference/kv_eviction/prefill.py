"""Chunked prefill with KV-cache eviction on transformers' DynamicCache, then a greedy answer.

The prompt goes through the model `chunk` tokens at a time with an ordinary DynamicCache. After
each chunk every layer's cache is cut back to the policy's budget: each KV head keeps its own
`budget` units (policies.select_units), gathered in place in the DynamicLayer's keys/values
tensors, so the attention of the next chunk sees only them. Keys keep the RoPE rotation of their
original positions and new tokens get their true absolute positions (position_ids), as in H2O and
Locret; StreamingLLM's re-numbering of positions inside the cache is not applied (the contexts here
are within the model's trained length). transformers builds the causal mask from the cache's
current length, which is right because every cached unit precedes the chunk.

Batch size 1 (prompts differ in length). The peak K/V bytes are measured after each chunk's
forward (budget + chunk units per head) and the bytes held after prefill once evicted.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from posttrain.inference.kv_eviction.policies import (
    Policy,
    accumulate_attention,
    new_unit_scores,
    select_units,
)


@dataclass
class PrefillResult:
    cache: object  # the DynamicCache after the last eviction
    logits: list[torch.Tensor]  # per chunk [1, C or 1, vocab] (the last row predicts the next token)
    positions: list[torch.Tensor]  # per layer [1, kv_heads, kept] absolute positions held
    peak_bytes: int = 0  # max K/V bytes held at any point of the prefill
    held_bytes: int = 0  # K/V bytes held after the prefill
    evictions: int = field(default=0)


def kv_bytes(cache) -> int:
    """Bytes of the key and value tensors a DynamicCache holds (all layers)."""
    return sum(
        t.numel() * t.element_size()
        for layer in cache.layers
        if layer.is_initialized
        for t in (layer.keys, layer.values)
    )


def evict_layer(layer, keep: torch.Tensor) -> None:
    """Keep only units `keep` ([B, kv_heads, n] cache indices) of a DynamicLayer, per KV head."""
    index = keep.to(layer.keys.device).unsqueeze(-1).expand(-1, -1, -1, layer.keys.shape[-1])
    layer.keys = layer.keys.gather(2, index)
    layer.values = layer.values.gather(2, index)


class _Scorer:
    """Per-layer scores of the cached units, updated after each chunk by the policy's rule. Scores
    live on the CPU (a few floats per unit) whatever device the model runs on."""

    def __init__(self, policy: Policy, layers: int, heads=None):
        self.policy, self.heads = policy, heads
        self.scores: list[torch.Tensor | None] = [None] * layers
        self.generator = torch.Generator().manual_seed(policy.seed)

    def update(self, layer: int, chunk: int, kv_heads: int, weights=None, qkv=None) -> torch.Tensor:
        previous = self.scores[layer]
        if previous is None:
            previous = torch.zeros(1, kv_heads, 0)
        if self.policy.method == "h2o":
            scores = accumulate_attention(previous, weights.cpu(), kv_heads)
        elif self.policy.method == "locret":
            with torch.no_grad():
                scores = torch.cat([previous, self.heads(layer, qkv.cpu()).float()], dim=-1)
        else:
            scores = torch.cat([previous, new_unit_scores(self.policy, (1, kv_heads, chunk), self.generator)], dim=-1)
        self.scores[layer] = scores
        return scores

    def keep(self, layer: int, keep: torch.Tensor) -> None:
        self.scores[layer] = self.scores[layer].gather(-1, keep)


@torch.no_grad()
def chunked_prefill(
    model, input_ids: torch.Tensor, policy: Policy, chunk: int, heads=None, all_logits: bool = False
) -> PrefillResult:
    """Run `input_ids` ([1, n]) through `model` in chunks, evicting to `policy.budget` after each.
    H2O needs the recording attention (attention.use_recording_attention); Locret needs `heads`.
    Only each chunk's last logits row is kept unless `all_logits` (n x vocab floats otherwise)."""
    from transformers import DynamicCache

    from posttrain.inference.kv_eviction.attention import AttentionRecorder, recording
    from posttrain.inference.kv_eviction.locret import capture_qkv

    layers = len(model.model.layers)
    cache = DynamicCache(config=model.config)
    scorer = _Scorer(policy, layers, heads)
    positions: list[torch.Tensor | None] = [None] * layers
    result = PrefillResult(cache=cache, logits=[], positions=[])
    qkv_capture = capture_qkv(model) if policy.method == "locret" else contextlib.nullcontext()
    with qkv_capture as qkv:
        for start in range(0, input_ids.shape[1], chunk):
            ids = input_ids[:, start : start + chunk]
            chunk_positions = torch.arange(start, start + ids.shape[1])
            with recording(AttentionRecorder(weights=policy.needs_attention)) as rec:
                out = model(
                    input_ids=ids.to(model.device),
                    position_ids=chunk_positions[None].to(model.device),
                    cache=cache,
                    use_cache=True,
                )
            result.logits.append(out.logits if all_logits else out.logits[:, -1:])
            result.peak_bytes = max(result.peak_bytes, kv_bytes(cache))
            for i, layer in enumerate(cache.layers):
                kv_heads = layer.keys.shape[1]
                new = chunk_positions.expand(1, kv_heads, -1)
                positions[i] = new if positions[i] is None else torch.cat([positions[i], new], dim=-1)
                if policy.method == "full":
                    continue
                scores = scorer.update(
                    i, ids.shape[1], kv_heads, weights=rec.weights.get(i), qkv=qkv[i] if qkv is not None else None
                )
                if layer.keys.shape[2] > policy.budget:
                    keep = select_units(scores, positions[i], policy.budget, policy.sinks, policy.recent)
                    evict_layer(layer, keep)
                    scorer.keep(i, keep)
                    positions[i] = positions[i].gather(-1, keep)
                    result.evictions += 1
    result.positions = positions
    result.held_bytes = kv_bytes(cache)
    return result


@torch.no_grad()
def greedy_answer(model, prefill: PrefillResult, start: int, tokens: int) -> list[int]:
    """Greedy decoding of `tokens` tokens after a prefill of `start` tokens (no eviction while
    answering: the answers here are a few tokens)."""
    next_id = int(prefill.logits[-1][0, -1].argmax())
    out = [next_id]
    for step in range(1, tokens):
        logits = model(
            input_ids=torch.tensor([[next_id]], device=model.device),
            position_ids=torch.tensor([[start + step - 1]], device=model.device),
            cache=prefill.cache,
            use_cache=True,
        ).logits
        next_id = int(logits[0, -1].argmax())
        out.append(next_id)
    return out
