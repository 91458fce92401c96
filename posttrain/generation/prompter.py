"""Rendering messages for one model: through its own chat template, or as plain text for a base
model (each user turn followed by its answer, examples separated by a blank line, after one BOS).
Used by every caller that turns messages into prompt ids: eval tasks, sample, serve, scorers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from posttrain.data.chat import tokenize_prompt
from posttrain.errors import UserError


@dataclass
class Prompter:
    """Renders messages for one model: through its chat template, or as plain text."""

    tokenizer: Any
    chat: bool
    system: str | None = None

    def messages(
        self, user: str, examples: list[tuple[str, str]] = (), preamble: str | None = None
    ) -> list[dict[str, str]]:
        """preamble: lm-evaluation-harness's task `description`, joined to the system text by a
        blank line; a chat model gets both as the system turn, plain text puts them first."""
        system = "\n\n".join(part for part in (self.system, preamble) if part)
        out = [{"role": "system", "content": system}] if system else []
        for question, answer in examples:
            out += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        return out + [{"role": "user", "content": user}]

    def for_row(self, doc: dict[str, Any]) -> Prompter:
        """This prompter with the document's own `system` column, when it has one, in place of the
        task's system message (Janus evaluates each item under its own system message; an empty
        string means no system message for that item)."""
        system = doc.get("system")
        if system is None:
            return self
        if not isinstance(system, str):
            raise UserError(f"document {doc.get('_id')}: the 'system' column must be text, got {type(system).__name__}")
        return replace(self, system=system)

    def encode(self, messages: list[dict[str, str]]) -> list[int]:
        if self.chat:
            return tokenize_prompt(self.tokenizer, messages)
        ids = list(self.tokenizer(self.plain_text(messages), add_special_tokens=False)["input_ids"])
        bos = self.tokenizer.bos_token_id
        return ([bos] if bos is not None else []) + ids

    def prompt(self, user: str, examples: list[tuple[str, str]] = (), preamble: str | None = None) -> list[int]:
        return self.encode(self.messages(user, examples, preamble))

    def continuation(self, text: str) -> str:
        """What follows a prompt as the model's answer: after a chat header the answer starts
        fresh; after plain text it is separated by a space (as "Answer:" + " Paris")."""
        return text.strip() if self.chat else " " + text.strip()

    def continuation_ids(self, text: str) -> list[int]:
        return list(self.tokenizer(self.continuation(text), add_special_tokens=False)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    @staticmethod
    def plain_text(messages: list[dict[str, str]]) -> str:
        parts, current = [], ""
        for message in messages:
            if message["role"] == "assistant":
                current = _join_answer(current, message["content"])
            else:
                if current:
                    parts.append(current)
                current = message["content"]
        return "\n\n".join(parts + [current])


def _join_answer(question: str, answer: str) -> str:
    return question + answer.strip() if question[-1:].isspace() else f"{question} {answer.strip()}"
