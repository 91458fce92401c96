"""Server-sent events of `posttrain serve`: one piece per token that joins to the answer exactly (also
when a stop string cut the text mid-token), chunk framing, [DONE] and the usage chunk."""

import json

import pytest

from posttrain.generation.backend import Completion
from posttrain.generation.server.batcher import Answer
from posttrain.generation.server.stream import chat_stream, completion_stream, text_pieces


@pytest.fixture(scope="module")
def tok(tiny_dir):
    from posttrain.model.load import load_tokenizer

    return load_tokenizer(str(tiny_dir))


def events(stream):
    lines = list(stream)
    assert all(line.startswith("data: ") and line.endswith("\n\n") for line in lines)
    assert lines[-1] == "data: [DONE]\n\n"
    return [json.loads(line[6:]) for line in lines[:-1]]


def test_pieces_join_to_the_text_one_per_token(tok):
    ids = tok("Tom has three red apples", add_special_tokens=False)["input_ids"]
    text = tok.decode(ids, skip_special_tokens=True)
    pieces = text_pieces(tok, ids, text)
    assert len(pieces) == len(ids) and "".join(pieces) == text
    cut = text[: text.find("red") + 1]  # a stop string cut inside the token ' red'
    assert "".join(text_pieces(tok, ids, cut)) == cut


def test_chat_stream_frames_role_pieces_finish_and_usage(tok):
    ids = tok("one two", add_special_tokens=False)["input_ids"]
    answer = Answer(Completion("one two", "length", len(ids), token_ids=tuple(ids)))
    usage = {"prompt_tokens": 4, "completion_tokens": len(ids), "total_tokens": 4 + len(ids)}
    chunks = events(chat_stream(tok, "m", [answer], usage))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[1:-1]) == "one two"
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == usage
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and len({c["id"] for c in chunks}) == 1


def test_completion_stream_echo_comes_first_and_choices_keep_their_index(tok):
    answers = [
        Answer(Completion(t, "stop", 1, token_ids=tuple(tok(t, add_special_tokens=False)["input_ids"])))
        for t in (" a", " b")
    ]
    chunks = events(completion_stream(tok, "m", answers, ["P0", "P1"], True, None))
    by_index = {0: "", 1: ""}
    for c in chunks:
        by_index[c["choices"][0]["index"]] += c["choices"][0]["text"]
    assert by_index == {0: "P0 a", 1: "P1 b"}
    assert chunks[0]["choices"][0]["text"] == "P0"
