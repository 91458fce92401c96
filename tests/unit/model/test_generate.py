"""Batched generation: left padding gives the same tokens as one prompt at a time; seeded sampling
repeats; stop ids and stop strings cut; the model's train/eval mode and the caller's RNG are untouched."""

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
)

from posttrain.errors import UserError
from posttrain.model.generate import (
    GenerationConfig,
    cut_at_eos,
    cut_at_stop_strings,
    generate_ids,
    generate_text,
    stop_token_ids,
)

TINY = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=128,
    vocab_size=300,
    max_position_embeddings=128,
)
PAD, EOS = 0, 1
# Different lengths, deliberately not sorted, so batches need left padding and reordering.
PROMPTS = [[5, 17, 42, 9, 120, 33, 7], [250], [64, 3, 99], [11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21], [77, 78]]


@pytest.fixture(scope="module")
def model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(**TINY))


def test_batched_greedy_equals_one_prompt_at_a_time(model):
    cfg = GenerationConfig(max_new_tokens=12, batch_size=8)
    batched = generate_ids(model, PROMPTS, PAD, [], cfg)
    one_by_one = [generate_ids(model, [prompt], PAD, [], cfg)[0] for prompt in PROMPTS]
    assert batched == one_by_one
    assert all(len(ids) == 12 for ids in batched)  # no eos given: every row runs to max_new_tokens


def test_eos_ends_a_row_and_is_not_returned(model):
    cfg = GenerationConfig(max_new_tokens=10)
    free_run = generate_ids(model, PROMPTS, PAD, [], cfg)
    stop_token = free_run[0][3]
    cut = generate_ids(model, PROMPTS, PAD, [stop_token], cfg)
    assert cut[0] == free_run[0][: free_run[0].index(stop_token)]
    for row_cut, row_free in zip(cut, free_run):
        assert stop_token not in row_cut and row_free[: len(row_cut)] == row_cut


def test_seeded_sampling_repeats_and_leaves_caller_rng_alone(model):
    cfg = GenerationConfig(max_new_tokens=16, temperature=1.0, top_p=0.95, seed=7, batch_size=2)
    torch.manual_seed(123)
    first = generate_ids(model, PROMPTS, PAD, [EOS], cfg)
    after_first = torch.rand(1)
    torch.manual_seed(123)
    assert generate_ids(model, PROMPTS, PAD, [EOS], cfg) == first
    assert torch.equal(torch.rand(1), after_first)  # generation forked its RNG
    other_seed = generate_ids(model, PROMPTS, PAD, [EOS], GenerationConfig(**{**cfg.__dict__, "seed": 8}))
    assert other_seed != first


@pytest.mark.parametrize("training", [True, False])
def test_model_mode_is_restored(model, training):
    model.train(training)
    generate_ids(model, PROMPTS[:2], PAD, [EOS], GenerationConfig(max_new_tokens=2))
    assert model.training is training


@pytest.mark.parametrize(
    "cfg",
    [
        GenerationConfig(max_new_tokens=0),
        GenerationConfig(temperature=-1.0),
        GenerationConfig(top_p=0.0),
        GenerationConfig(batch_size=0),
    ],
)
def test_bad_settings_and_empty_prompt_are_user_errors(model, cfg):
    with pytest.raises(UserError):
        generate_ids(model, PROMPTS, PAD, [EOS], cfg)
    with pytest.raises(UserError, match="empty prompt"):
        generate_ids(model, [[5], []], PAD, [EOS], GenerationConfig())


def test_cut_at_eos_keeps_what_comes_before_the_first_stop_id():
    assert cut_at_eos([5, 6, 2, 7, 3], [3, 2]) == [5, 6]
    assert cut_at_eos([5, 6], [2]) == [5, 6] and cut_at_eos([2, 5], [2]) == []


def test_cut_at_stop_strings_uses_earliest_match():
    assert cut_at_stop_strings("a b\n\nc###d", ["###", "\n\n"]) == "a b"
    assert cut_at_stop_strings("no stop here", ["###"]) == "no stop here"
    assert cut_at_stop_strings("keep", []) == "keep"


def test_generate_text_decodes_and_cuts_at_stop_string(tiny_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    prompts = [tokenizer("two plus two is").input_ids, tokenizer("The child counts").input_ids]
    cfg = GenerationConfig(max_new_tokens=20)
    texts = generate_text(model, tokenizer, prompts, cfg)
    ids = generate_ids(model, prompts, tokenizer.pad_token_id, stop_token_ids(model, tokenizer), cfg)
    assert texts == tokenizer.batch_decode(ids, skip_special_tokens=True)
    stop = texts[0][2:4]
    assert stop
    stopped = generate_text(model, tokenizer, prompts, GenerationConfig(max_new_tokens=20, stop_strings=[stop]))
    assert stopped[0] == texts[0][: texts[0].find(stop)]


def test_model_generation_defaults_do_not_override_the_request(model):
    import copy

    import transformers

    opinionated = copy.deepcopy(model)
    opinionated.generation_config = transformers.GenerationConfig(do_sample=True, temperature=5.0, top_k=1)
    greedy = GenerationConfig(max_new_tokens=8)
    assert generate_ids(opinionated, PROMPTS, PAD, [], greedy) == generate_ids(model, PROMPTS, PAD, [], greedy)
    sampled = GenerationConfig(max_new_tokens=8, temperature=1.0, seed=3)
    # top_k=1 from the model would make sampling greedy; the request switches top-k off.
    assert generate_ids(opinionated, PROMPTS, PAD, [], sampled) != generate_ids(model, PROMPTS, PAD, [], greedy)
