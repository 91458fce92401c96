"""Issue 31 items 2 and 4: the completions endpoint gets text by default (rendered with the chat
template here when a tokenizer is given), token ids only from a server known to take them; and
log-likelihood through its echo, refused in one line where the server gives no prompt log-probs."""

import json

import pytest
from transformers import AutoTokenizer

from posttrain.cli import main
from posttrain.errors import UserError
from posttrain.generation.backend import LoglikelihoodRequest
from posttrain.generation.openai_backend import OpenAIBackend, OpenAIClient
from posttrain.generation.openai_loglikelihood import prompt_text
from tests.integration.conftest import write_jsonl
from tests.unit.eval.fakes import json_server


def _text_completion(body, headers):
    return 200, {"choices": [{"text": " done", "finish_reason": "stop"}], "usage": {"completion_tokens": 1}}


class Recorder:
    def __init__(self, answer=_text_completion):
        self.bodies, self.answer = [], answer

    def __call__(self, body, headers):
        self.bodies.append(body)
        return self.answer(body, headers)


def _sample(tmp_path, url, *extra):
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "What is 2 + 2?"}])
    return main(
        [
            "sample",
            "m",
            "--prompts",
            str(prompts),
            "--out",
            str(tmp_path / "o.jsonl"),
            "--backend",
            "openai",
            "--base-url",
            url,
            "--endpoint",
            "completions",
            "--quiet",
            "--no-logprobs",
            *extra,
        ]
    )


def test_completions_sends_the_prompt_as_written_by_default(tmp_path):
    server = Recorder()
    with json_server(server) as url:
        assert _sample(tmp_path, url) == 0
    assert server.bodies[0]["prompt"] == "What is 2 + 2?"
    manifest = json.loads((tmp_path / "o.manifest.json").read_text())
    assert manifest["server"]["prompt"] == "text as written"


def test_tokenizer_renders_the_chat_template_as_text(tmp_path, tiny_dir):
    server = Recorder()
    with json_server(server) as url:
        assert _sample(tmp_path, url, "--tokenizer", str(tiny_dir)) == 0
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    rendered = tok.apply_chat_template(
        [{"role": "user", "content": "What is 2 + 2?"}], tokenize=False, add_generation_prompt=True
    )
    sent = server.bodies[0]["prompt"]
    assert isinstance(sent, str) and "What is 2 + 2?" in sent and sent != "What is 2 + 2?"
    assert rendered.endswith(sent) and len(rendered) - len(sent) <= len(tok.bos_token or "")


def test_token_ids_only_to_a_server_known_to_take_them(tmp_path, tiny_dir):
    server = Recorder()
    with json_server(server, models=[{"id": "m", "object": "model", "owned_by": "vllm"}]) as url:
        assert _sample(tmp_path, url, "--tokenizer", str(tiny_dir)) == 0
    sent = server.bodies[0]["prompt"]
    assert isinstance(sent, list) and all(isinstance(t, int) for t in sent)
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    assert "What is 2 + 2?" in tok.decode(sent)


def test_a_conversation_without_tokenizer_is_one_line(tmp_path, capsys):
    prompts = write_jsonl(
        tmp_path / "p.jsonl",
        [{"prompt": "ok"}, {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]}],
    )
    with json_server(Recorder()) as url:
        status = main(
            [
                "sample",
                "m",
                "--prompts",
                str(prompts),
                "--out",
                str(tmp_path / "o.jsonl"),
                "--backend",
                "openai",
                "--base-url",
                url,
                "--endpoint",
                "completions",
                "--quiet",
            ]
        )
    err = capsys.readouterr().err
    assert status == 2 and "row 2" in err and "--tokenizer" in err and "Traceback" not in err


def _echo(body, headers):
    """Echoes the text prompt as one token per character, log p = -0.1 * (position + 1), the
    first token None (nothing before it), plus one generated token."""
    prompt = body["prompt"]
    if isinstance(prompt, list):
        values = [None] + [-0.1 * (i + 1) for i in range(1, len(prompt))] + [-9.0]
        logprobs = {"tokens": [str(t) for t in prompt] + ["g"], "token_logprobs": values}
    else:
        values = [None] + [-0.1 * (i + 1) for i in range(1, len(prompt))] + [-9.0]
        logprobs = {
            "tokens": list(prompt) + ["g"],
            "token_logprobs": values,
            "text_offset": list(range(len(prompt) + 1)),
        }
    assert body["echo"] is True and body["logprobs"] == 1 and body["max_tokens"] == 1
    return 200, {"choices": [{"text": prompt if isinstance(prompt, str) else "", "logprobs": logprobs}]}


class CharTokenizer:
    """One id per character (ord), no BOS: the test can compute the expected sums by hand."""

    bos_token, bos_token_id = None, None

    def decode(self, ids, skip_special_tokens=False):
        return "".join(chr(i) for i in ids)


def test_loglikelihood_through_echo_text_and_ids():
    ctx, cont = [ord(c) for c in "abc"], [ord(c) for c in "de"]
    with json_server(_echo) as url:
        text = OpenAIBackend("m", OpenAIClient(url), "completions", CharTokenizer())
        [by_text] = text.loglikelihood([LoglikelihoodRequest(ctx, cont)])
        ids = OpenAIBackend("m", OpenAIClient(url), "completions", CharTokenizer(), prompt_format="ids")
        [by_ids] = ids.loglikelihood([LoglikelihoodRequest(ctx, cont)])
    # "abcde": d and e are at positions 3 and 4: -0.4 + -0.5; the generated token is left out
    assert by_text.logprob == pytest.approx(-0.9) and by_text.n_tokens == 2
    assert by_ids.logprob == pytest.approx(-0.9) and by_ids.n_tokens == 2


def test_loglikelihood_is_refused_in_one_line_without_prompt_logprobs():
    with json_server(_text_completion) as url:
        backend = OpenAIBackend("m", OpenAIClient(url), "completions", CharTokenizer())
        with pytest.raises(UserError, match="does not return the log-probs of a prompt's tokens"):
            backend.loglikelihood([LoglikelihoodRequest([97], [98])])
    with json_server(lambda body, headers: (400, {"error": "echo not supported"})) as url:
        backend = OpenAIBackend("m", OpenAIClient(url, max_retries=0), "completions", CharTokenizer())
        with pytest.raises(UserError, match="HTTP 400"):
            backend.loglikelihood([LoglikelihoodRequest([97], [98])])


def test_prompt_text_drops_a_leading_bos(tiny_dir):
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    ids = tok("hello world")["input_ids"]
    if tok.bos_token_id is not None and ids[0] != tok.bos_token_id:
        ids = [tok.bos_token_id] + ids
    text = prompt_text(tok, ids)
    assert text.strip() == "hello world" and (tok.bos_token is None or not text.startswith(tok.bos_token))


def test_an_echo_that_stops_at_the_prompt_is_refused():
    """llama-cpp-python 0.3.36's shape: the prompt's tokens only (their log-probs shifted by one)."""

    def prompt_only(body, headers):
        prompt = body["prompt"]
        return 200, {
            "choices": [
                {
                    "text": prompt,
                    "logprobs": {
                        "tokens": list(prompt),
                        "token_logprobs": [None] + [-0.5] * (len(prompt) - 1),
                        "text_offset": list(range(len(prompt))),
                    },
                }
            ]
        }

    with json_server(prompt_only) as url:
        backend = OpenAIBackend("m", OpenAIClient(url), "completions", CharTokenizer())
        with pytest.raises(UserError, match="stop at the prompt"):
            backend.loglikelihood([LoglikelihoodRequest([97, 98], [99])])
