"""Magpie on SmolLM2: the pre-query prefix cut from ChatML makes the instruct model write user
turns (questions or requests in English, no template markers), which it then answers."""

import json

from posttrain.cli import main
from posttrain.synthesis.magpie import pre_query_text

MARKERS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")


def test_pre_query_prefix_is_the_chatml_user_header(smollm2):
    _, tok = smollm2
    assert pre_query_text(tok) == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, "
        "trained by Hugging Face<|im_end|>\n<|im_start|>user\n"
    )


def test_magpie_rows_are_user_turns_answered(smollm2_dir, tmp_path):
    out = tmp_path / "magpie.jsonl"
    assert (
        main(
            [
                "synth",
                "magpie",
                "--out",
                str(out),
                "--set",
                f"source.model={smollm2_dir}",
                "--set",
                "n_rows=4",
                "--set",
                "batch_size=4",
                "--set",
                "query.max_new_tokens=64",
                "--set",
                "response.max_new_tokens=32",
                "--set",
                "filters.skip=[incomplete,length]",
            ]
        )
        == 0
    )
    raw = [json.loads(line) for line in (tmp_path / "magpie.raw.jsonl").read_text().splitlines()]
    assert len(raw) == 4
    finished = [r for r in raw if r["turns"][0]["finish_reason"] == "stop"]
    assert finished, [r["turns"] for r in raw]  # queries end at <|im_end|> within 64 tokens
    for row in raw:
        query = row["turns"][0]
        assert query["role"] == "user" and not any(m in query["content"] for m in MARKERS), query
        assert not query["content"].lower().startswith(("assistant", "system", "user")), query
    for row in finished:  # a finished query is answered
        assert [t["role"] for t in row["turns"]] == ["user", "assistant"], row["turns"]
        assert len(row["turns"][0]["content"].split()) >= 3, row["turns"]
