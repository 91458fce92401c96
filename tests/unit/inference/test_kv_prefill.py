"""Chunked prefill with eviction on the tiny model's DynamicCache, and Locret's retaining heads learning."""

import pytest
import torch


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from posttrain.inference.kv_eviction.attention import use_recording_attention

    model = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32).eval()
    use_recording_attention(model)
    return model, AutoTokenizer.from_pretrained(tiny_dir)


@pytest.fixture(scope="module")
def prompt_ids(model_and_tokenizer):
    ids = torch.randint(
        0, model_and_tokenizer[0].config.vocab_size, (1, 90), generator=torch.Generator().manual_seed(0)
    )
    return ids


def test_unlimited_budget_prefill_equals_the_full_forward(model_and_tokenizer, prompt_ids):
    from transformers import AutoModelForCausalLM

    from posttrain.inference.kv_eviction.policies import Policy
    from posttrain.inference.kv_eviction.prefill import chunked_prefill

    model = model_and_tokenizer[0]
    reference = AutoModelForCausalLM.from_pretrained(model.name_or_path, dtype=torch.float32).eval()  # sdpa
    with torch.no_grad():
        full = reference(input_ids=prompt_ids).logits
    for chunk in (7, 32):
        result = chunked_prefill(model, prompt_ids, Policy("full"), chunk, all_logits=True)
        torch.testing.assert_close(torch.cat(result.logits, dim=1), full, atol=1e-5, rtol=0)
        assert result.evictions == 0
        assert result.held_bytes == result.peak_bytes


def test_streaming_prefill_keeps_sinks_and_window_in_every_layer(model_and_tokenizer, prompt_ids):
    from posttrain.inference.kv_eviction.policies import Policy
    from posttrain.inference.kv_eviction.prefill import chunked_prefill, kv_bytes

    model = model_and_tokenizer[0]
    result = chunked_prefill(model, prompt_ids, Policy("streaming", 20, 4, 16), chunk=16)
    expected = list(range(4)) + list(range(74, 90))
    for layer, positions in zip(result.cache.layers, result.positions):
        assert layer.keys.shape[2] == layer.values.shape[2] == 20
        assert positions.tolist() == [[expected] * positions.shape[1]]
    c = model.config
    unit = 2 * c.num_hidden_layers * c.num_key_value_heads * (c.hidden_size // c.num_attention_heads) * 4
    assert result.held_bytes == kv_bytes(result.cache) == 20 * unit
    assert result.peak_bytes == (20 + 16) * unit  # budget plus one chunk before eviction


def test_eviction_gathers_the_kept_units_of_each_layer(model_and_tokenizer, prompt_ids):
    """Two chunks then one eviction: the kept keys/values are the full cache's at the kept positions."""
    from posttrain.inference.kv_eviction.policies import Policy
    from posttrain.inference.kv_eviction.prefill import chunked_prefill

    model = model_and_tokenizer[0]
    full = chunked_prefill(model, prompt_ids[:, :32], Policy("full"), chunk=16)
    kept = chunked_prefill(model, prompt_ids[:, :32], Policy("random", 20, 0, 4, seed=3), chunk=16)
    for f, k, positions in zip(full.cache.layers, kept.cache.layers, kept.positions):
        assert positions.shape[-1] == 20 and not torch.equal(positions[0, 0], positions[0, 1])  # per head
        index = positions.unsqueeze(-1).expand(-1, -1, -1, f.keys.shape[-1])
        torch.testing.assert_close(k.keys, f.keys.gather(2, index), atol=0, rtol=0)
        torch.testing.assert_close(k.values, f.values.gather(2, index), atol=0, rtol=0)
        assert positions[0, :, -4:].tolist() == [list(range(28, 32))] * positions.shape[1]


def _top_recall(predicted: torch.Tensor, labels: torch.Tensor, budget: int) -> float:
    """Fraction of the label's top-`budget` units (per KV head) that the prediction's top-`budget` holds."""
    truth = labels.topk(budget, dim=-1).indices
    chosen = predicted.topk(budget, dim=-1).indices
    hits = (truth.unsqueeze(-1) == chosen.unsqueeze(-2)).any(-1).float()
    return float(hits.mean())


def test_locret_heads_learn_to_predict_importance(model_and_tokenizer):
    """Retaining heads trained on the tiny model's CIS labels (needle task) pick the truly important
    units far better than random eviction at the same budget on held-out items."""
    from posttrain.inference.kv_eviction.evaluate import encode_items
    from posttrain.inference.kv_eviction.locret import (
        cis_features,
        heads_for,
        locret_loss,
        train_heads,
    )
    from posttrain.inference.kv_eviction.needle import needle_rows

    model, tokenizer = model_and_tokenizer
    encoded = encode_items(tokenizer, needle_rows(28, seed=5, min_sentences=3, max_sentences=5))
    train, held_out = encoded[:20], encoded[20:]
    untrained = heads_for(model, hidden=64, seed=0)
    heads, losses = train_heads(model, train, steps=300, lr=3e-3, hidden=64, seed=0)
    budget, rng = 24, torch.Generator().manual_seed(0)
    learned, random_pick, before, after = [], [], [], []
    for prompt, answer in held_out:
        features, labels = cis_features(model, prompt, answer)
        for i in features:
            with torch.no_grad():
                predicted = heads(i, features[i])
                before.append(float(locret_loss(untrained(i, features[i]), labels[i], 0.025)))
                after.append(float(locret_loss(predicted, labels[i], 0.025)))
            learned.append(_top_recall(predicted, labels[i], budget))
            random_pick.append(_top_recall(torch.rand(labels[i].shape, generator=rng), labels[i], budget))
    learned_recall, random_recall = sum(learned) / len(learned), sum(random_pick) / len(random_pick)
    print(
        f"held-out loss {sum(before) / len(before):.3f} -> {sum(after) / len(after):.3f}; "
        f"top-{budget} recall: heads {learned_recall:.3f}, random {random_recall:.3f}"
    )
    assert sum(losses[-20:]) < 0.5 * sum(losses[:20])
    assert sum(after) < 0.7 * sum(before)
    assert learned_recall > random_recall + 0.2


def test_locret_prefill_keeps_the_highest_predicted_units(model_and_tokenizer, prompt_ids):
    """Two chunks then one eviction: the kept units are the 4 stabilizers plus the top-16 head
    scores of the others, computed here from a plain forward's q/k/v projections."""
    from posttrain.inference.kv_eviction.locret import capture_qkv, heads_for
    from posttrain.inference.kv_eviction.policies import Policy
    from posttrain.inference.kv_eviction.prefill import chunked_prefill

    model = model_and_tokenizer[0]
    heads = heads_for(model, hidden=16, seed=1)
    result = chunked_prefill(model, prompt_ids[:, :32], Policy("locret", 20, 0, 4), chunk=16, heads=heads)
    with torch.no_grad(), capture_qkv(model) as qkv:
        model(input_ids=prompt_ids[:, :32])
        for i, positions in enumerate(result.positions):
            scores = heads(i, qkv[i])[0, :, :28]  # [kv_heads, 28] without the 4 stabilizers
            expected = torch.cat(
                [scores.topk(16, dim=-1).indices.sort(dim=-1).values, torch.arange(28, 32).expand(scores.shape[0], 4)],
                dim=-1,
            )
            assert positions[0].tolist() == expected.tolist()
