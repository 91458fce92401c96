"""Record kinds: every accepted spelling normalises to the same shape, and every mistake names its field."""

import pytest

from posttrain.data.records import (
    ConversationRecord,
    PreferenceRecord,
    PromptRecord,
    RecordError,
    TextRecord,
    detect_kind,
    record_kind,
    to_record,
)
from posttrain.errors import UserError


def user(content):
    return {"role": "user", "content": content}


def assistant(content):
    return {"role": "assistant", "content": content}


def system(content):
    return {"role": "system", "content": content}


def record_error(row, kind):
    with pytest.raises(RecordError) as caught:
        to_record(row, kind)
    return caught.value.field, caught.value.problem


# ---- text --------------------------------------------------------------------------------------


def test_text_record():
    assert to_record({"text": "Once upon a time"}, "text") == TextRecord("Once upon a time")


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ({}, "missing"),
        ({"text": None}, "missing"),
        ({"text": "  "}, "empty"),
        ({"text": 3}, "expected a string, got number"),
    ],
)
def test_text_record_errors(row, problem):
    assert record_error(row, "text") == ("text", problem)


# ---- conversation ------------------------------------------------------------------------------


def test_messages_multi_turn_keeps_system_and_drops_extra_keys():
    turns = [system("Be brief."), user("Hi"), assistant("Hello."), user("Bye")]
    record = to_record({"messages": turns + [{**assistant("Bye."), "name": "x"}]}, "conversation")
    assert record == ConversationRecord(turns + [assistant("Bye.")])


def test_sharegpt_spelling():
    turns = [
        {"from": "system", "value": "S"},
        {"from": "human", "value": "Q1"},
        {"from": "gpt", "value": "A1"},
        {"from": "user", "value": "Q2"},
        {"from": "model", "value": "A2"},
    ]
    record = to_record({"conversations": turns}, "conversation")
    assert record.messages == [system("S"), user("Q1"), assistant("A1"), user("Q2"), assistant("A2")]


def test_alpaca_without_input():
    record = to_record({"instruction": "Add 2 and 2.", "output": "4"}, "conversation")
    assert record.messages == [user("Add 2 and 2."), assistant("4")]


def test_alpaca_with_input_and_system():
    row = {"instruction": "Translate.", "input": "Bonjour", "output": "Hello", "system": "You translate."}
    record = to_record(row, "conversation")
    assert record.messages == [system("You translate."), user("Translate.\n\nBonjour"), assistant("Hello")]


def test_alpaca_empty_input_is_not_appended():
    record = to_record({"instruction": "Say hi.", "input": "", "output": "hi"}, "conversation")
    assert record.messages[0] == user("Say hi.")


@pytest.mark.parametrize(
    ("row", "field", "problem"),
    [
        ({"messages": []}, "messages", "empty list of messages"),
        ({"messages": "hi"}, "messages", "expected a list of messages, got string"),
        (
            {"messages": [user("a"), assistant("b"), {"role": "tool", "content": "c"}]},
            "messages[2].role",
            "unknown role 'tool'; expected system, user or assistant",
        ),
        ({"messages": [user("a"), {"content": "b"}]}, "messages[1].role", "missing"),
        ({"messages": [user("a"), {"role": "assistant"}]}, "messages[1].content", "missing"),
        ({"messages": [user("a"), assistant(["b"])]}, "messages[1].content", "expected a string, got list"),
        ({"messages": [user("a"), "b"]}, "messages[1]", "expected an object with 'role' and 'content', got string"),
        ({"messages": [user("a"), user("b")]}, "messages", "no assistant message, so nothing to train on"),
        (
            {"messages": [user("a"), system("s"), assistant("b")]},
            "messages[1].role",
            "a system message is only allowed first",
        ),
        (
            {"conversations": [{"from": "human", "value": "a"}, {"from": "bot", "value": "b"}]},
            "conversations[1].from",
            "unknown speaker 'bot'; expected one of human, user, gpt, assistant, model, system",
        ),
        (
            {"conversations": [{"from": "human", "value": "a"}]},
            "conversations",
            "no assistant message, so nothing to train on",
        ),
        ({"instruction": "Do it."}, "output", "missing"),
        ({"instruction": "Do it.", "input": 5, "output": "ok"}, "input", "expected a string, got number"),
        (
            {"text": "hello"},
            "messages",
            "missing; expected 'messages', 'conversations' (ShareGPT) or 'instruction' + 'output' (alpaca)",
        ),
    ],
)
def test_conversation_errors(row, field, problem):
    assert record_error(row, "conversation") == (field, problem)


# ---- preference --------------------------------------------------------------------------------


def test_preference_explicit_strings():
    record = to_record({"prompt": "2+2?", "chosen": "4", "rejected": "5"}, "preference")
    assert record == PreferenceRecord([user("2+2?")], [assistant("4")], [assistant("5")])


def test_preference_explicit_message_lists():
    prompt = [system("S"), user("2+2?")]
    row = {"prompt": prompt, "chosen": [assistant("4")], "rejected": [assistant("5")]}
    record = to_record(row, "preference")
    assert record == PreferenceRecord(prompt, [assistant("4")], [assistant("5")])


def test_preference_implicit_prompt_is_longest_common_prefix():
    shared = [user("Hi"), assistant("Hello"), user("2+2?")]
    row = {"chosen": shared + [assistant("4")], "rejected": shared + [assistant("5")]}
    assert to_record(row, "preference") == PreferenceRecord(shared, [assistant("4")], [assistant("5")])


def test_preference_identical_completions_are_allowed():
    record = to_record({"prompt": "q", "chosen": "a", "rejected": "a"}, "preference")
    assert record.chosen == record.rejected


@pytest.mark.parametrize(
    ("row", "field", "problem"),
    [
        ({"prompt": "q", "chosen": "", "rejected": "b"}, "chosen", "empty"),
        ({"prompt": "q", "chosen": "a"}, "rejected", "missing"),
        ({"prompt": "q", "chosen": "a", "rejected": []}, "rejected", "empty list of messages"),
        (
            {"prompt": [user("q"), assistant("a")], "chosen": "a", "rejected": "b"},
            "prompt[1].role",
            "a prompt must end with a user message, got 'assistant'",
        ),
        (
            {"prompt": "q", "chosen": [user("a")], "rejected": "b"},
            "chosen[0].role",
            "a completion must start with an assistant message, got 'user'",
        ),
        (
            {"chosen": "a", "rejected": "b"},
            "chosen",
            "without a 'prompt' field this must be a whole conversation (a list of messages), got string",
        ),
        (
            {"chosen": [user("q"), assistant("a")], "rejected": [user("other"), assistant("b")]},
            "chosen",
            "without a 'prompt' field, chosen and rejected must start with the same prompt messages",
        ),
        (
            {"chosen": [user("q"), assistant("a")], "rejected": [user("q"), assistant("a")]},
            "chosen",
            "nothing after the prompt it shares with the other completion",
        ),
        (
            {
                "chosen": [user("q"), assistant("a"), user("x")],
                "rejected": [user("q"), assistant("a"), user("y")],
            },
            "chosen[1].role",
            "the prompt shared by chosen and rejected must end with a user message, got 'assistant'",
        ),
    ],
)
def test_preference_errors(row, field, problem):
    assert record_error(row, "preference") == (field, problem)


# ---- prompt ------------------------------------------------------------------------------------


def test_prompt_string_with_reference():
    assert to_record({"prompt": "2+2?", "reference": "4"}, "prompt") == PromptRecord([user("2+2?")], "4")


def test_prompt_number_answer_becomes_string():
    assert to_record({"prompt": "2+2?", "answer": 4}, "prompt").reference == "4"


def test_prompt_reference_order_and_solution():
    row = {"prompt": "q", "answer": "from answer", "solution": "from solution"}
    assert to_record(row, "prompt").reference == "from answer"
    assert to_record({"prompt": "q", "solution": "s"}, "prompt").reference == "s"


def test_prompt_without_reference():
    prompt = [system("S"), user("q")]
    assert to_record({"prompt": prompt}, "prompt") == PromptRecord(prompt, None)


def test_prompt_from_messages_ending_with_user():
    assert to_record({"messages": [user("q")]}, "prompt").prompt == [user("q")]


@pytest.mark.parametrize(
    ("row", "field", "problem"),
    [
        ({"question": "q"}, "prompt", "missing; expected 'prompt' (string or messages) or 'messages'"),
        (
            {"messages": [user("q"), assistant("a")]},
            "messages[1].role",
            "a prompt must end with a user message, got 'assistant'",
        ),
        ({"prompt": "q", "answer": [1]}, "answer", "expected a string or number, got list"),
    ],
)
def test_prompt_errors(row, field, problem):
    assert record_error(row, "prompt") == (field, problem)


# ---- detection ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "kind"),
    [
        ({"prompt": "q", "chosen": "a", "rejected": "b"}, "preference"),
        ({"messages": [user("q"), assistant("a")]}, "conversation"),
        ({"conversations": []}, "conversation"),
        ({"instruction": "i", "output": "o"}, "conversation"),
        ({"prompt": "q", "answer": "a"}, "prompt"),
        ({"text": "t"}, "text"),
        ({"text": "t", "messages": None}, "text"),
    ],
)
def test_detect_kind(row, kind):
    assert detect_kind(row) == kind


def test_auto_kind_validates_as_detected():
    record = to_record({"instruction": "i", "output": "o"}, "auto")
    assert isinstance(record, ConversationRecord) and record_kind(record) == "conversation"


def test_undetectable_row_names_the_fields_it_found():
    field, problem = record_error({"question": "q", "response": "r", "id": None}, "auto")
    assert field == "(kind)"
    assert problem.startswith("cannot tell the record kind from the fields found ('question', 'response'); expected")


def test_unknown_kind_is_a_user_error():
    with pytest.raises(UserError, match="unknown record kind 'chat'; expected one of text, conversation"):
        to_record({"text": "t"}, "chat")
