"""The official `openai` client against a real `posttrain serve` process: every call of the request
surface, streamed and not, and the answers checked against each other and against the model itself."""

import openai
import pytest

from tests.integration.serve_process import serve_process

MODEL = "tiny-test"
HELLO = [{"role": "user", "content": "Hello there"}]


@pytest.fixture(scope="module")
def client(tiny_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with serve_process(tiny_dir, log, "--name", MODEL, "--batch-size", "8") as url:
        with openai.OpenAI(base_url=url, api_key="unused", max_retries=0) as c:
            yield c


def chat(client, **kw):
    return client.chat.completions.create(
        model=MODEL, messages=kw.pop("messages", HELLO), temperature=kw.pop("temperature", 0), **kw
    )


def test_models_list_and_retrieve(client):
    assert [m.id for m in client.models.list().data] == [MODEL]
    assert client.models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.NotFoundError) as err:
        client.models.retrieve("gpt-4o")
    assert err.value.body["code"] == "model_not_found"


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=2)


def test_chat_max_tokens_and_finish_reason(client):
    reply = chat(client, max_tokens=3)
    assert reply.object == "chat.completion" and reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 3
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 3
    assert chat(client, max_completion_tokens=2).usage.completion_tokens == 2


def test_chat_stream_equals_the_plain_answer_with_usage(client):
    plain = chat(client, max_tokens=8)
    chunks = list(chat(client, max_tokens=8, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content and text
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 2  # one chunk per token


def test_stream_without_include_usage_has_no_usage_chunk(client):
    chunks = list(chat(client, max_tokens=4, stream=True))
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)


def test_completions_stream_equals_the_plain_answer(client):
    plain = client.completions.create(model=MODEL, prompt="Tom has", max_tokens=6, temperature=0)
    chunks = list(client.completions.create(model=MODEL, prompt="Tom has", max_tokens=6, temperature=0, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == plain.choices[0].text
    assert chunks[-1].choices[0].finish_reason == plain.choices[0].finish_reason


def test_content_parts_equal_the_joined_string(client):
    parts = [{"role": "user", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": " there"}]}]
    assert (
        chat(client, messages=parts, max_tokens=6).choices[0].message.content
        == chat(client, max_tokens=6).choices[0].message.content
    )
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]
    with pytest.raises(openai.BadRequestError):
        chat(client, messages=image, max_tokens=2)


def test_prompt_lists_token_ids_and_n(client, tiny_dir):
    from posttrain.model.load import load_tokenizer

    ids = list(load_tokenizer(str(tiny_dir))("Tom has")["input_ids"])
    one = client.completions.create(model=MODEL, prompt="Tom has", max_tokens=5, temperature=0).choices[0].text
    many = client.completions.create(model=MODEL, prompt=["Tom has", "Ann"], n=2, max_tokens=5, temperature=0)
    assert [c.index for c in many.choices] == [0, 1, 2, 3]
    assert many.choices[0].text == many.choices[1].text == one  # choice i answers prompt i // n
    by_ids = client.completions.create(model=MODEL, prompt=[ids, ids], max_tokens=5, temperature=0)
    assert [c.text for c in by_ids.choices] == [one, one]
    assert by_ids.usage.prompt_tokens == 2 * len(ids)


def test_stop_strings_cut_the_answer(client):
    full = chat(client, max_tokens=12).choices[0].message.content
    stop = full.strip()[3:5]  # two characters from inside the greedy answer
    cut = chat(client, max_tokens=12, stop=[stop, "zzzq", "qqqz", "@@@"])
    assert cut.choices[0].message.content == full[: full.find(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_seed_reproduces_and_any_integer_is_accepted(client):
    def sampled(seed):
        return chat(client, max_tokens=8, temperature=1.0, seed=seed).choices[0].message.content

    assert sampled(7) == sampled(7)
    assert len({sampled(s) for s in (1, 2, 3, 4)}) > 1  # the seed does choose the sample
    for seed in (-1, -(2**70), 2**70):
        assert chat(client, max_tokens=2, temperature=1.0, seed=seed).choices[0].message.content is not None


def test_chat_logprobs_greedy_token_is_the_top_alternative(client):
    reply = chat(client, max_tokens=4, logprobs=True, top_logprobs=3)
    content = reply.choices[0].logprobs.content
    assert len(content) == 4
    for token in content:
        assert len(token.top_logprobs) == 3
        assert token.logprob == pytest.approx(token.top_logprobs[0].logprob)  # greedy picks the argmax
        assert token.top_logprobs[0].logprob >= token.top_logprobs[2].logprob
    assert "".join(t.token for t in content) == reply.choices[0].message.content


def test_completion_echo_and_logprobs(client):
    reply = client.completions.create(model=MODEL, prompt="Tom has", max_tokens=3, temperature=0, echo=True, logprobs=2)
    choice = reply.choices[0]
    assert choice.text.startswith("Tom has")
    assert choice.logprobs.token_logprobs[0] is None  # nothing precedes the first prompt token
    assert all(lp <= 0 for lp in choice.logprobs.token_logprobs[1:])
    assert len(choice.logprobs.top_logprobs[-1]) == 2
    plain = client.completions.create(model=MODEL, prompt="Tom has", max_tokens=3, temperature=0)
    assert choice.text == "Tom has" + plain.choices[0].text


def test_refusals_through_the_client(client):
    for kw in (
        {"response_format": {"type": "json_object"}},
        {"max_tokens": 0},
        {"n": 129},
        {"top_logprobs": 3},
        {"stop": ["a", "b", "c", "d", "e"]},
        {"top_logprobs": 21, "logprobs": True},
    ):
        with pytest.raises(openai.BadRequestError) as err:
            chat(client, **{"max_tokens": 2, **kw})
        assert err.value.status_code == 400 and err.value.body["message"]
    assert chat(client, max_tokens=2, response_format={"type": "text"}).choices[0].message.content is not None
