import functools

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from posttrain.data.batching import IGNORE, Example
from posttrain.data.preference import PairExample, collate_pairs
from posttrain.model.logprobs import token_logprobs
from posttrain.model.reference import precompute_reference_logps


def test_reference_log_probs_are_taken_in_eval_mode_without_gradients():
    """With dropout on, a train-mode forward is random; the reference must be the deterministic
    eval-mode function, and the model's own mode must come back unchanged."""
    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=64,
            vocab_size=64,
            attention_dropout=0.5,
        )
    ).train()
    ids = [1, 5, 9, 13, 17, 21]
    pair = PairExample([], Example(ids, [IGNORE] * 3 + ids[3:]), Example(ids[::-1], [IGNORE] * 3 + ids[::-1][3:]))
    collate = functools.partial(collate_pairs, pad_id=0)
    precompute_reference_logps(model, [pair], collate, ("chosen", "rejected"), 4, torch.device("cpu"))
    assert model.training
    model.eval()
    with torch.no_grad():
        t = torch.tensor([pair.chosen.input_ids])
        expected = float(token_logprobs(model, t, torch.tensor([pair.chosen.labels])).sum())
    assert abs(pair.ref_logps["chosen"] - expected) < 1e-5
