"""Request bodies of `posttrain serve`: the forms each field takes, its ranges, and the cross-field
rules, checked without a server."""

import pytest
from pydantic import ValidationError

from posttrain.generation.server.errors import validation_error
from posttrain.generation.server.schema import ChatRequest, CompletionRequest, seed_value

USER = [{"role": "user", "content": "hi"}]


def refusal(schema, **body):
    with pytest.raises(ValidationError) as err:
        schema.model_validate(body)
    return validation_error(err.value.errors())


def test_prompt_forms_become_a_list_of_prompts():
    def prompts(p):
        return CompletionRequest(model="m", prompt=p).prompts()

    assert prompts("a") == ["a"]
    assert prompts(["a", "b"]) == ["a", "b"]
    assert prompts([1, 2]) == [[1, 2]]
    assert prompts([[1], [2, 3]]) == [[1], [2, 3]]


def test_content_parts_join_and_developer_is_a_system_turn():
    body = ChatRequest(
        model="m",
        messages=[
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        ],
    )
    assert [m.text() for m in body.messages] == ["be brief", "ab"]


def test_token_budget_defaults_and_precedence():
    assert ChatRequest(model="m", messages=USER).new_tokens() == 256
    assert ChatRequest(model="m", messages=USER, max_tokens=9, max_completion_tokens=4).new_tokens() == 4
    assert CompletionRequest(model="m", prompt="x", max_tokens=5).new_tokens() == 5


def test_top_k_only_with_logprobs():
    assert ChatRequest(model="m", messages=USER).top_k() is None
    assert ChatRequest(model="m", messages=USER, logprobs=True).top_k() == 0
    assert ChatRequest(model="m", messages=USER, logprobs=True, top_logprobs=5).top_k() == 5
    assert CompletionRequest(model="m", prompt="x", logprobs=0).top_k() == 0


def test_cross_field_refusals_name_their_field():
    assert refusal(ChatRequest, model="m", messages=USER, top_logprobs=1).param == "top_logprobs"
    assert refusal(CompletionRequest, model="m", prompt=["a"] * 43, n=3).param == "n"
    assert refusal(CompletionRequest, model="m", prompt="x", best_of=3).param == "best_of"
    err = refusal(ChatRequest, model="m", messages=USER, presence_penalty=0.5)
    assert (err.status, err.param) == (400, "presence_penalty") and "not supported" in err.message


def test_union_fields_are_named_without_pydantic_tags():
    err = refusal(ChatRequest, model="m", messages=USER, stop=7)
    assert err.param == "stop" and err.message.startswith("stop: not one of the accepted forms")
    assert refusal(ChatRequest, model="m", messages=[{"role": "user", "content": 3}]).param == "messages.0.content"


def test_top_p_zero_is_greedy_and_every_integer_seed_maps_into_range():
    assert ChatRequest(model="m", messages=USER, top_p=0).greedy()
    assert not ChatRequest(model="m", messages=USER, temperature=0.5).greedy()
    for seed in (-1, -(2**80), 2**80, 0, 5):
        assert 0 <= seed_value(seed) < 2**63
    assert seed_value(5) == 5 and seed_value(None) == 0 and seed_value(-1) != seed_value(1)
