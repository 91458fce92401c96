"""Issue 31 item 4: `posttrain eval --backend openai` against a scripted server on loopback:
generation tasks through either endpoint, log-likelihood tasks through the completions echo, and
a one-line refusal from a server that returns no prompt log-probs."""

import json

import pytest

from posttrain.cli import main
from tests.integration.conftest import write_jsonl
from tests.unit.eval.fakes import first_documents, json_server

DOCS = first_documents("arithmetic", 4)
# the right answer is neither the first nor the shortest choice: a tie, or a sum over the whole
# prompt, picks a wrong one
MC_ROWS = [
    {"prompt": "Capital of France?", "choices": ["Paris", "Rome"], "gold": 0},
    {"prompt": "Two plus two?", "choices": ["five", "four", "six"], "gold": 1},
]
GOLD = {row["choices"][row["gold"]] for row in MC_ROWS}


def _answer(prompt: str) -> str:
    """The right number for the first three documents, a wrong one for the fourth."""
    doc = next(d for d in DOCS if d["prompt"] in prompt)
    return f"The answer is {doc['reference'] if doc['_id'] < 3 else 0}."


def _server(body, headers):
    if "messages" in body:
        text = _answer(body["messages"][-1]["content"])
        return 200, {"choices": [{"message": {"content": text}, "finish_reason": "stop"}]}
    prompt = body["prompt"]
    if not body.get("echo"):
        return 200, {"choices": [{"text": " " + _answer(prompt), "finish_reason": "stop"}]}
    # echo: one token per character; the characters of a right answer are likely, others not
    gold_end = next((len(prompt) - len(g) for g in GOLD if prompt.endswith(g)), None)
    values = [None] + [(-0.01 if gold_end is not None and i >= gold_end else -1.0) for i in range(1, len(prompt))]
    return 200, {
        "choices": [
            {
                "text": prompt,
                "logprobs": {
                    "tokens": [*prompt, "x"],
                    "token_logprobs": values + [-5.0],
                    "text_offset": list(range(len(prompt) + 1)),
                },
            }
        ]
    }


def _eval(url, out, tiny_dir, tmp_path, tasks, *extra):
    mc = write_jsonl(tmp_path / "mc.jsonl", MC_ROWS)
    return main(
        [
            "eval",
            "served-model",
            "--backend",
            "openai",
            "--base-url",
            url,
            "--tokenizer",
            str(tiny_dir),
            "--tasks",
            tasks,
            "--data",
            f"multiple_choice={mc}",
            "--limit",
            "4",
            "--output-dir",
            str(out),
            *extra,
        ]
        if "multiple_choice" in tasks
        else [
            "eval",
            "served-model",
            "--backend",
            "openai",
            "--base-url",
            url,
            "--tokenizer",
            str(tiny_dir),
            "--tasks",
            tasks,
            "--limit",
            "4",
            "--output-dir",
            str(out),
            *extra,
        ]
    )


def _value(out, task, metric):
    tasks = json.loads((out / "results.json").read_text())["tasks"]
    return tasks[task]["metrics"][metric]["value"]


def test_generation_and_loglikelihood_through_completions(tiny_dir, tmp_path):
    out = tmp_path / "eval"
    with json_server(_server) as url:
        _eval(url, out, tiny_dir, tmp_path, "arithmetic,multiple_choice")
    assert _value(out, "arithmetic", "exact_match") == 0.75  # three right answers of four
    assert _value(out, "multiple_choice", "acc") == 1.0
    text = (out / "results.json").read_text()
    assert "served-model" in text and "http://127.0.0.1" in text  # the server identity in run info


def test_generation_through_chat(tiny_dir, tmp_path):
    out = tmp_path / "eval"
    with json_server(_server) as url:
        _eval(url, out, tiny_dir, tmp_path, "arithmetic", "--endpoint", "chat")
    assert _value(out, "arithmetic", "exact_match") == 0.75


def test_loglikelihood_task_refused_in_one_line(tiny_dir, tmp_path, capsys):
    def no_echo(body, headers):
        return 200, {"choices": [{"text": " x", "finish_reason": "stop", "logprobs": None}]}

    with json_server(no_echo) as url:
        status = _eval(url, tmp_path / "eval", tiny_dir, tmp_path, "multiple_choice")
    err = capsys.readouterr().err
    assert status == 2 and "does not return the log-probs of a prompt's tokens" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "eval" / "results.json").exists()


@pytest.mark.parametrize("flag", [[], ["--base-url", "http://u:secret@127.0.0.1:1/v1"]])
def test_missing_or_credentialed_base_url_is_one_line(tiny_dir, tmp_path, capsys, flag):
    status = main(
        [
            "eval",
            "m",
            "--backend",
            "openai",
            "--tokenizer",
            str(tiny_dir),
            "--tasks",
            "arithmetic",
            "--output-dir",
            str(tmp_path / "e"),
            *flag,
        ]
    )
    err = capsys.readouterr().err
    assert status == 2 and "secret" not in err and ("--base-url" in err or "credentials" in err)
