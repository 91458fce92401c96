"""An assistant turn with `weight: 0` (OpenAI's fine-tuning format) is context, not trained on: it is
kept by validation, rendered like any turn, and left out of the loss mask; other weights are errors."""

import pytest
from transformers import AutoTokenizer

from posttrain.data.chat import tokenize_conversation
from posttrain.data.records import RecordError, to_record
from tests.unit.data.test_chat import CONVERSATION, EXPECTED_SPANS, trained_spans


def test_weight_zero_turn_is_context_only(tiny_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    row = {"messages": [*CONVERSATION[:2], {**CONVERSATION[2], "weight": 0}, *CONVERSATION[3:]]}
    record = to_record(row, "conversation")
    assert record.messages[2]["weight"] == 0 and "weight" not in record.messages[4]
    ids, labels = tokenize_conversation(tokenizer, record.messages)
    assert ids == tokenize_conversation(tokenizer, CONVERSATION)[0]  # rendered the same
    assert [tokenizer.decode(span) for span in trained_spans(labels)] == EXPECTED_SPANS[1:]
    assert (
        "weight"
        not in to_record({"messages": [CONVERSATION[1], {**CONVERSATION[2], "weight": 1}]}, "conversation").messages[1]
    )


@pytest.mark.parametrize(
    "message",
    [
        {"role": "assistant", "content": "a", "weight": 0.5},
        {"role": "user", "content": "q", "weight": 0},
        {"role": "assistant", "content": "a", "weight": True},
    ],
)
def test_other_weights_are_errors(message):
    with pytest.raises(RecordError, match="weight"):
        to_record(
            {
                "messages": [
                    {"role": "user", "content": "q"},
                    message,
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": "a"},
                ]
            },
            "conversation",
        )
