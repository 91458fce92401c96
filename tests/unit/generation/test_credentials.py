"""Issue 30 item 8: the API key never reaches a message, a manifest or a log line. Each test here
failed before credentials.py: the key pasted as the variable name was echoed, credentials in the
base URL were accepted (and so stored), and a server echoing the key had it copied into failures."""

import json
import logging

import pytest

from posttrain.cli import main
from posttrain.errors import UserError
from posttrain.generation.credentials import check_base_url, read_api_key
from posttrain.generation.openai_backend import HTTPFailure, OpenAIClient
from tests.integration.conftest import write_jsonl
from tests.unit.eval.fakes import json_server

KEY = "sk-live-9f8e7d6c5b4a39281706f5e4d3c2b1a0"


def test_a_key_given_as_the_variable_name_is_not_echoed():
    with pytest.raises(UserError) as err:
        read_api_key(KEY)
    assert KEY not in str(err.value) and "NAME of an environment variable" in str(err.value)


def test_an_unset_variable_name_is_named(monkeypatch):
    monkeypatch.delenv("MY_SERVER_KEY", raising=False)
    with pytest.raises(UserError, match=r"\$MY_SERVER_KEY, which is not set"):
        read_api_key("MY_SERVER_KEY")
    monkeypatch.setenv("MY_SERVER_KEY", KEY)
    assert read_api_key("MY_SERVER_KEY") == KEY


@pytest.mark.parametrize(
    "url",
    [
        f"http://user:{KEY}@127.0.0.1:8000/v1",
        f"https://{KEY}@api.example.org/v1",
        f"http://127.0.0.1:8000/v1?api_key={KEY}",
        f"http://h/v1?x=1&access_token={KEY}",
    ],
)
def test_credentials_in_a_url_are_refused_without_repeating_them(url):
    with pytest.raises(UserError) as err:
        OpenAIClient(url)
    assert KEY not in str(err.value) and "credential" in str(err.value)


def test_plain_urls_pass_and_bad_ones_are_one_line():
    assert check_base_url("http://127.0.0.1:8000/v1?model=x") == "http://127.0.0.1:8000/v1?model=x"
    for bad in ("ftp://host/v1", "127.0.0.1:8000/v1", "http://host:99999/v1"):
        with pytest.raises(UserError, match="server URL"):
            check_base_url(bad)


def _echoing(body, headers):
    """A server that quotes the Authorization header back in its error body."""
    return 401, {"error": f"invalid key {headers['Authorization'].removeprefix('Bearer ')}"}


def _echoing_at_the_cut(body, headers):
    """The key placed across the 200-character cut of a failure message: redacting after the cut
    would leave its first half."""
    return 401, {"e": "x" * 180 + headers["Authorization"].removeprefix("Bearer ")}


@pytest.mark.parametrize("server", [_echoing, _echoing_at_the_cut])
def test_a_key_echoed_by_the_server_is_redacted_in_the_failure(monkeypatch, server):
    monkeypatch.setenv("MY_SERVER_KEY", KEY)
    with json_server(server) as url:
        client = OpenAIClient(url, "MY_SERVER_KEY", max_retries=0)
        with pytest.raises(HTTPFailure) as err:
            client.post("/chat/completions", {})
    assert KEY[:6] not in str(err.value) and "HTTP 401" in str(err.value)


def test_sample_manifest_and_output_hold_no_key(monkeypatch, tmp_path, capsys, caplog):
    monkeypatch.setenv("MY_SERVER_KEY", KEY)
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "hi"}, {"prompt": "there"}])
    caplog.set_level(logging.DEBUG)
    with json_server(_echoing) as url:
        status = main(
            [
                "sample",
                "served",
                "--prompts",
                str(prompts),
                "--out",
                str(tmp_path / "o.jsonl"),
                "--backend",
                "openai",
                "--base-url",
                url,
                "--api-key-env",
                "MY_SERVER_KEY",
                "--max-retries",
                "0",
                "--quiet",
            ]
        )
    manifest = (tmp_path / "o.manifest.json").read_text()
    assert status == 1 and json.loads(manifest)["counts"]["failed"] == 2 and "HTTP 401" in manifest
    written = manifest + "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    shown = capsys.readouterr()
    for text in (written, shown.out, shown.err, caplog.text):
        assert KEY[:6] not in text
