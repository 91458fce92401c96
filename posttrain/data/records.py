"""The four record kinds a data file can hold, and the validation that turns a raw row into one.

Files come in several community spellings (OpenAI-style `messages`, ShareGPT `conversations`,
alpaca `instruction`/`output`, TRL's preference formats). Rows are normalised here once, so every
stage sees only these dataclasses. Messages stay plain `{"role", "content"}` dicts because that is
what `tokenizer.apply_chat_template` takes.

Absent and null fields are treated alike: columnar formats (Parquet, `datasets`) fill a field that
only some rows have with None in the others.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from posttrain.errors import UserError

Message = dict[str, str]

RECORD_KINDS = ("text", "conversation", "preference", "prompt")
ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "model": "assistant",
    "system": "system",
}
# Where a prompt row's reference answer may be, in order of preference (names used by common eval sets).
REFERENCE_FIELDS = ("reference", "answer", "solution")


class RecordError(Exception):
    """A row that does not fit its record kind. `field` locates the problem (e.g. `messages[2].role`)
    so the caller can turn it into a one-line error naming file, row and field."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"field '{field}': {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True)
class TextRecord:
    """Raw text for (continual) pre-training."""

    text: str


@dataclass(frozen=True, slots=True)
class ConversationRecord:
    """A chat for SFT: an optional leading system message, then turns with at least one assistant."""

    messages: list[Message]


@dataclass(frozen=True, slots=True)
class PreferenceRecord:
    """A preference pair: the shared prompt (ends with a user message) and two completions that
    each start with an assistant message. A row whose `rejected` is a list of completions (strings
    or message lists) gives several dis-preferred responses (LOGO): the first is `rejected`, the
    others `more_rejected`."""

    prompt: list[Message]
    chosen: list[Message]
    rejected: list[Message]
    more_rejected: tuple[list[Message], ...] = ()


@dataclass(frozen=True, slots=True)
class PromptRecord:
    """A prompt with no target (generation, RL, eval), with the reference answer when one is given."""

    prompt: list[Message]
    reference: str | None = None


Record = TextRecord | ConversationRecord | PreferenceRecord | PromptRecord

_KIND_OF_TYPE = {
    TextRecord: "text",
    ConversationRecord: "conversation",
    PreferenceRecord: "preference",
    PromptRecord: "prompt",
}


def record_kind(record: Record) -> str:
    """The kind name ("text", "conversation", ...) of a record."""
    return _KIND_OF_TYPE[type(record)]


def check_kind(kind: str) -> None:
    """Reject a kind name that is neither a record kind nor "auto" (it comes from the user's recipe)."""
    if kind != "auto" and kind not in RECORD_KINDS:
        raise UserError(f"unknown record kind {kind!r}; expected one of {', '.join(RECORD_KINDS)} or auto")


def describe_type(value: Any) -> str:
    """A JSON-flavoured type name for error messages: most data files are JSON."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "list"
    return type(value).__name__


def to_record(row: Mapping, kind: str) -> Record:
    """Validate one row as `kind` ("auto": detect it from the fields) and normalise it to a record."""
    check_kind(kind)
    if not isinstance(row, Mapping):
        raise RecordError("(row)", f"expected an object, got {describe_type(row)}")
    if kind == "auto":
        kind = detect_kind(row)
    return _PARSERS[kind](row)


def detect_kind(row: Mapping) -> str:
    """Guess the record kind from which fields a row has; raise RecordError if none fits."""
    if _has(row, "chosen") and _has(row, "rejected"):
        return "preference"
    if _has(row, "messages") or _has(row, "conversations") or (_has(row, "instruction") and _has(row, "output")):
        return "conversation"
    if _has(row, "prompt") and not _has(row, "chosen"):
        return "prompt"
    if _has(row, "text"):
        return "text"
    found = ", ".join(repr(key) for key in row if _has(row, key)) or "none"
    raise RecordError(
        "(kind)",
        f"cannot tell the record kind from the fields found ({found}); expected 'chosen' + 'rejected' "
        "(preference), 'messages', 'conversations' or 'instruction' + 'output' (conversation), "
        "'prompt' (prompt) or 'text' (text)",
    )


# ---- one parser per kind -------------------------------------------------------------------


def _text(row: Mapping) -> TextRecord:
    return TextRecord(_required_text(row, "text"))


def _conversation(row: Mapping) -> ConversationRecord:
    if _has(row, "messages"):
        field, messages = "messages", _message_list(row["messages"], "messages")
    elif _has(row, "conversations"):
        field, messages = "conversations", _sharegpt_messages(row["conversations"])
    elif _has(row, "instruction") or _has(row, "output"):
        return ConversationRecord(_alpaca_messages(row))
    else:
        raise RecordError(
            "messages", "missing; expected 'messages', 'conversations' (ShareGPT) or 'instruction' + 'output' (alpaca)"
        )
    if not any(message["role"] == "assistant" for message in messages):
        raise RecordError(field, "no assistant message, so nothing to train on")
    return ConversationRecord(messages)


def _preference(row: Mapping) -> PreferenceRecord:
    if not _has(row, "prompt"):
        return _implicit_preference(row)
    prompt = _prompt_messages(row["prompt"], "prompt")
    chosen = _completion(row.get("chosen"), "chosen")
    rejected = _rejected_completions(row.get("rejected"))
    return PreferenceRecord(prompt, chosen, rejected[0], tuple(rejected[1:]))


def _rejected_completions(value: Any) -> list[list[Message]]:
    """One rejected completion, or several: a list whose items are strings or message lists (a list
    of message objects is ONE completion)."""
    if isinstance(value, list | tuple) and value and isinstance(value[0], str | list | tuple):
        return [_completion(item, f"rejected[{index}]") for index, item in enumerate(value)]
    return [_completion(value, "rejected")]


def _prompt_record(row: Mapping) -> PromptRecord:
    if _has(row, "prompt"):
        prompt = _prompt_messages(row["prompt"], "prompt")
    elif _has(row, "messages"):
        prompt = _message_list(row["messages"], "messages")
        _check_ends_with_user(prompt, "messages")
    else:
        raise RecordError("prompt", "missing; expected 'prompt' (string or messages) or 'messages'")
    return PromptRecord(prompt, _reference(row))


_PARSERS = {"text": _text, "conversation": _conversation, "preference": _preference, "prompt": _prompt_record}


# ---- spellings -----------------------------------------------------------------------------


def _alpaca_messages(row: Mapping) -> list[Message]:
    """alpaca: the optional `input` is appended to the instruction after a blank line."""
    instruction = _required_text(row, "instruction")
    extra_input = _optional_text(row, "input")
    system = _optional_text(row, "system")
    output = _required_text(row, "output")
    user = f"{instruction}\n\n{extra_input}" if extra_input else instruction
    messages = [{"role": "system", "content": system}] if system else []
    return messages + [{"role": "user", "content": user}, {"role": "assistant", "content": output}]


def _sharegpt_messages(value: Any) -> list[Message]:
    return _message_list(value, "conversations", parse_one=_sharegpt_turn, role_key="from")


def _sharegpt_turn(value: Any, field: str) -> Message:
    if not isinstance(value, Mapping):
        raise RecordError(field, f"expected an object with 'from' and 'value', got {describe_type(value)}")
    speaker = value.get("from")
    if speaker is None:
        raise RecordError(f"{field}.from", "missing")
    role = SHAREGPT_ROLES.get(speaker.lower()) if isinstance(speaker, str) else None
    if role is None:
        raise RecordError(f"{field}.from", f"unknown speaker {speaker!r}; expected one of {', '.join(SHAREGPT_ROLES)}")
    return {"role": role, "content": _content(value.get("value"), f"{field}.value")}


def _implicit_preference(row: Mapping) -> PreferenceRecord:
    """TRL's implicit-prompt format: chosen and rejected are whole conversations and the prompt is
    their longest common prefix of messages."""
    chosen = _full_conversation(row.get("chosen"), "chosen")
    rejected = _full_conversation(row.get("rejected"), "rejected")
    shared = _common_prefix_length(chosen, rejected)
    if shared == 0:
        raise RecordError(
            "chosen", "without a 'prompt' field, chosen and rejected must start with the same prompt messages"
        )
    for field, messages in (("chosen", chosen), ("rejected", rejected)):
        if len(messages) == shared:
            raise RecordError(field, "nothing after the prompt it shares with the other completion")
    _check_ends_with_user(chosen[:shared], "chosen", what="the prompt shared by chosen and rejected")
    for field, messages in (("chosen", chosen), ("rejected", rejected)):
        _check_starts_with_assistant(messages, field, start=shared)
    return PreferenceRecord(chosen[:shared], chosen[shared:], rejected[shared:])


def _full_conversation(value: Any, field: str) -> list[Message]:
    if isinstance(value, str):
        problem = "without a 'prompt' field this must be a whole conversation (a list of messages), got string"
        raise RecordError(field, problem)
    return _message_list(value, field)


def _common_prefix_length(first: list[Message], second: list[Message]) -> int:
    length = 0
    while length < min(len(first), len(second)) and first[length] == second[length]:
        length += 1
    return length


# ---- message lists ---------------------------------------------------------------------------


def _prompt_messages(value: Any, field: str) -> list[Message]:
    """A prompt: a string is one user message; a message list must end with a user message."""
    if isinstance(value, str):
        return [{"role": "user", "content": _non_empty(value, field)}]
    messages = _message_list(value, field)
    _check_ends_with_user(messages, field)
    return messages


def _completion(value: Any, field: str) -> list[Message]:
    """A completion: a string is one assistant message; a message list must start with one."""
    if isinstance(value, str):
        return [{"role": "assistant", "content": _non_empty(value, field)}]
    messages = _message_list(value, field)
    _check_starts_with_assistant(messages, field, start=0)
    return messages


def _message(value: Any, field: str) -> Message:
    """One {role, content} message; other keys (name, tool_calls, ...) are dropped, except an
    assistant turn's `weight: 0` (OpenAI's fine-tuning format): context for SFT, not trained on."""
    if not isinstance(value, Mapping):
        raise RecordError(field, f"expected an object with 'role' and 'content', got {describe_type(value)}")
    role = value.get("role")
    if role is None:
        raise RecordError(f"{field}.role", "missing")
    if role not in ROLES:
        raise RecordError(f"{field}.role", f"unknown role {role!r}; expected system, user or assistant")
    message = {"role": role, "content": _content(value.get("content"), f"{field}.content")}
    weight = value.get("weight")
    if weight is not None and (isinstance(weight, bool) or weight not in (0, 1) or role != "assistant"):
        raise RecordError(f"{field}.weight", f"must be 0 or 1 on an assistant message, got {weight!r} ({role})")
    return {**message, "weight": 0} if weight == 0 else message


def _content(value: Any, field: str) -> str:
    if value is None:
        raise RecordError(field, "missing")
    if not isinstance(value, str):
        raise RecordError(field, f"expected a string, got {describe_type(value)}")
    return value


def _message_list(
    value: Any, field: str, parse_one: Callable[[Any, str], Message] = _message, role_key: str = "role"
) -> list[Message]:
    """Parse a non-empty list of messages; a system message may only come first."""
    if value is None:
        raise RecordError(field, "missing")
    if not isinstance(value, list | tuple):
        raise RecordError(field, f"expected a list of messages, got {describe_type(value)}")
    if not value:
        raise RecordError(field, "empty list of messages")
    messages = [parse_one(item, f"{field}[{index}]") for index, item in enumerate(value)]
    for index, message in enumerate(messages[1:], start=1):
        if message["role"] == "system":
            raise RecordError(f"{field}[{index}].{role_key}", "a system message is only allowed first")
    return messages


def _check_ends_with_user(messages: list[Message], field: str, what: str = "a prompt") -> None:
    last = len(messages) - 1
    role = messages[last]["role"]
    if role != "user":
        raise RecordError(f"{field}[{last}].role", f"{what} must end with a user message, got {role!r}")


def _check_starts_with_assistant(messages: list[Message], field: str, start: int) -> None:
    role = messages[start]["role"]
    if role != "assistant":
        raise RecordError(f"{field}[{start}].role", f"a completion must start with an assistant message, got {role!r}")


# ---- scalar fields ---------------------------------------------------------------------------


def _has(row: Mapping, key: str) -> bool:
    return row.get(key) is not None


def _required_text(row: Mapping, field: str) -> str:
    value = row.get(field)
    if value is None:
        raise RecordError(field, "missing")
    if not isinstance(value, str):
        raise RecordError(field, f"expected a string, got {describe_type(value)}")
    return _non_empty(value, field)


def _optional_text(row: Mapping, field: str) -> str | None:
    """An optional string field; empty counts as absent (CSV cannot tell empty from missing)."""
    value = row.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError(field, f"expected a string, got {describe_type(value)}")
    return value if value.strip() else None


def _non_empty(value: str, field: str) -> str:
    if not value.strip():
        raise RecordError(field, "empty")
    return value


def _reference(row: Mapping) -> str | None:
    """The first non-empty reference field; numbers (common in math sets) become strings."""
    for field in REFERENCE_FIELDS:
        value = row.get(field)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise RecordError(field, f"expected a string or number, got {describe_type(value)}")
        return str(value)
    return None
