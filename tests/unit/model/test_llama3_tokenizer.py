"""The offline Llama-3 tokenizer encodes exactly like the reference BPE (quicktok's llama3 encoding)."""

import pytest

quicktok = pytest.importorskip("quicktok")

from posttrain.model.llama3_tokenizer import llama3_tokenizer  # noqa: E402

SAMPLES = [
    "Hello world!",
    "What is 47 + 38? The answer is 85.",
    "12345678 3.14159 -42 1,000,000",
    "  leading, inner   and trailing spaces   ",
    "line one\nline two\r\n\n\n\ttabbed\n",
    "naïve café, 東京タワー, Привет мир, مرحبا, 😀👍🏽",
    "def f(x):\n    return x ** 2  # squared\n\nprint(f(3))\n",
    "I'm sure they'LL say we've done it; you'd THINK so.",
    '{"key": [1, 2, 3], "nested": {"a": null}}',
    "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
    "",
]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    import os

    os.environ["POSTTRAIN_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    try:
        llama3_tokenizer()  # builds and caches
        return llama3_tokenizer()  # loads the cached copy: the path every later caller takes
    finally:
        del os.environ["POSTTRAIN_CACHE"]


@pytest.mark.parametrize("text", SAMPLES)
def test_matches_reference_encoding(tokenizer, text):
    reference = quicktok.get_encoding("llama3").encode_with_special(text)
    assert tokenizer(text, add_special_tokens=False)["input_ids"] == reference
    assert tokenizer.decode(reference) == text


def test_special_tokens_and_size(tokenizer):
    assert len(tokenizer) == 128256
    expected = {
        "<|begin_of_text|>": 128000,
        "<|end_of_text|>": 128001,
        "<|start_header_id|>": 128006,
        "<|end_header_id|>": 128007,
        "<|eot_id|>": 128009,
    }
    assert {t: tokenizer.convert_tokens_to_ids(t) for t in expected} == expected
    assert tokenizer.convert_ids_to_tokens(128255) == "<|reserved_special_token_250|>"
    assert tokenizer.bos_token_id == 128000 and tokenizer.eos_token == "<|eot_id|>"


def test_bos_prepended_once_and_chat_template(tokenizer):
    assert tokenizer("Hello")["input_ids"] == [128000, 9906]
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert rendered == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
