"""HFBackend.complete: text cut at stop strings with the tokens that made it, finish reasons as
servers give them, and the log-prob of exactly the kept tokens."""

from posttrain.generation.backend import (
    GenerationRequest,
    LoglikelihoodRequest,
    completion_from_ids,
)


def _ids(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_stop_string_cuts_text_and_counts_tokens_up_to_it(tiny_model):
    _, tok = tiny_model
    ids = _ids(tok, "one two three. four five")
    done = completion_from_ids(tok, ids, GenerationRequest([1], max_new_tokens=50, stop=(".",)))
    assert done.text == "one two three" and done.finish_reason == "stop"
    assert tok.decode(done.token_ids).endswith(".") and "four" not in tok.decode(done.token_ids)
    assert done.num_tokens == len(done.token_ids) < len(ids)


def test_finish_reason_is_length_only_when_max_new_tokens_is_reached(tiny_model):
    _, tok = tiny_model
    ids = _ids(tok, "one two three")
    assert completion_from_ids(tok, ids, GenerationRequest([1], max_new_tokens=len(ids))).finish_reason == "length"
    short = completion_from_ids(tok, ids, GenerationRequest([1], max_new_tokens=len(ids) + 1))
    assert short.finish_reason == "stop" and short.num_tokens == len(ids) and short.text == "one two three"


def test_complete_matches_generate_and_scores_its_own_tokens(tiny_backend):
    tok = tiny_backend.tokenizer
    prompts = [[tok.bos_token_id] + _ids(tok, text) for text in ("What is 1 + 2?", "Tom has")]
    requests = [GenerationRequest(p, max_new_tokens=6) for p in prompts]
    done = tiny_backend.complete(requests, logprobs=True)
    assert [c.text for c in done] == tiny_backend.generate(requests)
    expected = tiny_backend.loglikelihood([LoglikelihoodRequest(p, list(c.token_ids)) for p, c in zip(prompts, done)])
    assert [c.logprob for c in done] == [e.logprob for e in expected]
    assert all(c.num_tokens == len(c.token_ids) for c in done)
