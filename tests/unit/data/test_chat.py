"""Chat rendering and loss masks, pinned on both the real Llama-3 tokenizer and the tiny one."""

import pytest
from transformers import AutoTokenizer

from posttrain.data.chat import (
    IGNORE_INDEX,
    LLAMA3_CHAT_TEMPLATE,
    tokenize_conversation,
    tokenize_prompt,
    tokenize_text,
)
from posttrain.errors import UserError

CONVERSATION = [
    {"role": "system", "content": "You are a careful calculator."},
    {"role": "user", "content": "What is 47 + 38?"},
    {"role": "assistant", "content": "47 + 38 = 85. The answer is 85."},
    {"role": "user", "content": "And 85 - 20?"},
    {"role": "assistant", "content": "  85 - 20 = 65. The answer is 65.\n"},  # the template trims
]
EXPECTED_SPANS = ["47 + 38 = 85. The answer is 85.<|eot_id|>", "85 - 20 = 65. The answer is 65.<|eot_id|>"]


@pytest.fixture()
def tokenizer(chat_tokenizer):
    return chat_tokenizer


def trained_spans(labels: list[int]) -> list[list[int]]:
    """Maximal runs of trained (non -100) labels."""
    spans, current = [], []
    for label in labels + [IGNORE_INDEX]:
        if label != IGNORE_INDEX:
            current.append(label)
        elif current:
            spans, current = spans + [current], []
    return spans


def test_exactly_one_bos(tokenizer):
    ids, _ = tokenize_conversation(tokenizer, CONVERSATION)
    assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1
    prompt = tokenize_prompt(tokenizer, CONVERSATION[:2])
    assert prompt.count(tokenizer.bos_token_id) == 1


def test_masks_cover_each_assistant_turn_and_its_eot(tokenizer):
    ids, labels = tokenize_conversation(tokenizer, CONVERSATION)
    assert len(ids) == len(labels)
    spans = [tokenizer.decode(span) for span in trained_spans(labels)]
    assert spans == EXPECTED_SPANS
    assert all(label in (IGNORE_INDEX, token) for token, label in zip(ids, labels))


def test_headers_system_and_user_not_trained_but_kept(tokenizer):
    ids, labels = tokenize_conversation(tokenizer, CONVERSATION)
    header_ids = {tokenizer.convert_tokens_to_ids(t) for t in ("<|start_header_id|>", "<|end_header_id|>")}
    assert not header_ids & {label for label in labels if label != IGNORE_INDEX}
    text = tokenizer.decode(ids)
    assert "You are a careful calculator." in text and "system" in text
    trained_text = "".join(tokenizer.decode(span) for span in trained_spans(labels))
    assert "careful" not in trained_text and "And 85" not in trained_text and "assistant" not in trained_text


def test_prompt_is_the_conversation_prefix_plus_header(tokenizer):
    ids, labels = tokenize_conversation(tokenizer, CONVERSATION[:3])
    prompt = tokenize_prompt(tokenizer, CONVERSATION[:2])
    assert ids[: len(prompt)] == prompt
    assert labels[len(prompt) - 1] == IGNORE_INDEX and labels[len(prompt)] != IGNORE_INDEX
    assert tokenizer.decode(prompt).endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_tokenize_text_is_bos_tokens_end_of_text(tokenizer):
    # Llama-3-Instruct's eos is <|eot_id|>, a turn marker: documents end with <|end_of_text|>
    ids = tokenize_text(tokenizer, "47 plus 38 is 85.")
    assert ids[0] == tokenizer.bos_token_id
    assert ids[-1] == tokenizer.convert_tokens_to_ids("<|end_of_text|>")
    assert ids[1:-1] == tokenizer("47 plus 38 is 85.", add_special_tokens=False)["input_ids"]


def test_missing_template_gets_llama3(tiny_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    tokenizer.chat_template = None
    ids, _ = tokenize_conversation(tokenizer, CONVERSATION)
    assert tokenizer.chat_template == LLAMA3_CHAT_TEMPLATE
    assert tokenizer.decode(ids).startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>")


def test_template_without_bos_gets_one_prepended(tiny_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    tokenizer.chat_template = LLAMA3_CHAT_TEMPLATE.replace("bos_token + ", "")
    ids, labels = tokenize_conversation(tokenizer, CONVERSATION)
    assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1
    assert [tokenizer.decode(s) for s in trained_spans(labels)] == EXPECTED_SPANS


def test_non_prefix_stable_template_is_rejected(tiny_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    # The generation prompt says "Assistant:" but a rendered assistant turn says "Bot:".
    tokenizer.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'assistant' %}Bot: {% else %}User: {% endif %}"
        "{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}Assistant: {% endif %}"
    )
    with pytest.raises(UserError, match="prefix-stable"):
        tokenize_conversation(tokenizer, CONVERSATION[1:3])


def test_conversation_starting_with_assistant_is_rejected(tiny_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    with pytest.raises(UserError, match="assistant"):
        tokenize_conversation(tokenizer, CONVERSATION[2:])
