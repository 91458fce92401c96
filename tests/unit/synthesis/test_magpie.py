"""Magpie's pre-query prefix, cut from the tokenizer's own template (Llama-3 exactly, the tiny
model's, a template with a default system turn), and the prompts a Magpie batch sends: the prefix
alone for the first query, the conversation so far plus the same cut for the next one."""

import pytest
from transformers import AutoTokenizer

from posttrain.data.chat import tokenize_prompt
from posttrain.generation.backend import Completion, RequestFailed
from posttrain.synthesis.magpie import (
    MagpieBatch,
    Recipe,
    pre_query_ids,
    pre_query_text,
)

LLAMA3_PREFIX = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
# A ChatML-style template that adds a system turn when there is none (as Qwen-2's does).
CHATML_WITH_DEFAULT_SYSTEM = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are helpful.<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture()
def tokenizer(chat_tokenizer):
    return chat_tokenizer


def test_prefix_ends_exactly_at_the_user_header(tokenizer):
    assert pre_query_text(tokenizer) == LLAMA3_PREFIX
    ids = pre_query_ids(tokenizer)
    assert tokenizer.decode(ids) == LLAMA3_PREFIX
    assert ids.count(tokenizer.bos_token_id) == 1 and ids[0] == tokenizer.bos_token_id
    # the ids are those of a real conversation's rendering, up to the user's text
    full = tokenize_prompt(tokenizer, [{"role": "user", "content": "What is 2 + 2?"}])
    assert full[: len(ids)] == ids and tokenizer.decode(full[len(ids) :]).startswith("What is 2 + 2?")


def test_next_turn_prefix_is_the_conversation_then_the_user_header(tokenizer):
    conv = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]
    assert pre_query_text(tokenizer, conv) == (
        LLAMA3_PREFIX + "Hi<|eot_id|><|start_header_id|>assistant"
        "<|end_header_id|>\n\nHello.<|eot_id|><|start_header_id|>user"
        "<|end_header_id|>\n\n"
    )


def test_prefix_of_another_template_keeps_its_default_system_turn(tiny_dir):
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    tok.chat_template = CHATML_WITH_DEFAULT_SYSTEM
    assert pre_query_text(tok) == "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\n"


class ScriptedChat:
    """A backend answering `complete` with answer(prompt text), finish_reason 'stop'; records prompts."""

    def __init__(self, tokenizer, answer):
        self.tokenizer, self.answer, self.prompts, self.seeds = tokenizer, answer, [], []

    def complete(self, requests, desc="", seed=None, logprobs=False):
        self.seeds.append(seed)
        out = []
        for r in requests:
            self.prompts.append(list(r.prompt))
            text = self.answer(self.tokenizer.decode(r.prompt))
            out.append(RequestFailed("down") if text is None else Completion(text, "stop", 3))
        return out


def test_a_batch_samples_queries_from_the_prefix_then_answers_them(tiny_dir):
    tok = AutoTokenizer.from_pretrained(tiny_dir)

    def answer(prompt):
        if prompt.endswith("user<|end_header_id|>\n\n"):
            return "Second question?" if "First" in prompt else "First question?"
        return "Answer two." if "Second" in prompt else "Answer one."

    backend = ScriptedChat(tok, answer)
    rows = MagpieBatch(backend, Recipe(turns=2, seed=10))([0, 1], 3).rows
    assert [m["content"] for m in rows[0]["messages"]] == [
        "First question?",
        "Answer one.",
        "Second question?",
        "Answer two.",
    ]
    assert rows[1]["item"] == 1 and all(t["finish_reason"] == "stop" for t in rows[0]["turns"])
    first, second = backend.prompts[0], backend.prompts[4]
    assert first == pre_query_ids(tok)  # the query is sampled from the prefix alone
    assert second == pre_query_ids(tok, rows[0]["messages"][:2])
    assert backend.prompts[2] == tokenize_prompt(tok, rows[0]["messages"][:1])
    assert backend.seeds == [10 + 12, 10 + 13, 10 + 14, 10 + 15]  # distinct per batch, turn and phase


def test_a_failed_request_fails_its_row_only(tiny_dir):
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    calls = iter(range(100))
    backend = ScriptedChat(tok, lambda prompt: None if next(calls) == 1 else "Q?")
    out = MagpieBatch(backend, Recipe())([0, 1, 2], 0)
    assert [r["item"] for r in out.rows] == [0, 2] and out.failures == [{"row": 1, "error": "down"}]
