"""`posttrain serve` as a real process on a free loopback port: `posttrain sample --backend openai`
through it equals `--backend hf` token for token under greedy decoding (chat and completions
endpoints), and the HTTP judge reads its log-probs."""

import json

import httpx
import pytest

from posttrain.cli import main
from tests.integration.conftest import write_jsonl
from tests.integration.serve_process import serve_process


@pytest.fixture(scope="module")
def served(tiny_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with serve_process(tiny_dir, log, "--name", "tiny-test", "--batch-size", "4") as url:
        yield url


def _texts(path):
    return [
        [(c["text"], c["num_tokens"], c["finish_reason"]) for c in json.loads(line)["completions"]]
        for line in path.read_text().splitlines()
    ]


def _logprobs(path):
    return [c["logprob"] for line in path.read_text().splitlines() for c in json.loads(line)["completions"]]


def test_sample_through_serve_equals_hf_under_greedy(served, tiny_dir, tmp_path):
    assert httpx.get(served + "/models").json()["data"][0]["id"] == "tiny-test"
    prompts = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {"prompt": "What is 3 + 4?"},
            {"prompt": "Tom has 2 apples."},
            {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]},
            {"prompt": "Name a colour", "answer": "red"},
        ],
    )
    base = [
        "sample",
        str(tiny_dir),
        "--prompts",
        str(prompts),
        "--n",
        "2",
        "--temperature",
        "0",
        "--max-new-tokens",
        "12",
        "--stop",
        "e",
        "--quiet",
        "--batch-size",
        "3",
    ]
    assert main(base + ["--out", str(tmp_path / "hf.jsonl")]) == 0
    for endpoint in ("chat", "completions"):
        out = tmp_path / f"{endpoint}.jsonl"
        assert (
            main(
                base
                + [
                    "--out",
                    str(out),
                    "--backend",
                    "openai",
                    "--base-url",
                    served,
                    "--endpoint",
                    endpoint,
                    "--concurrency",
                    "4",
                ]
                # the completions endpoint sends text as written unless told which tokenizer renders
                # a conversation (issue 31); with it, posttrain serve is sent the same token ids
                + (["--tokenizer", str(tiny_dir)] if endpoint == "completions" else [])
            )
            == 0
        )
        assert _texts(out) == _texts(tmp_path / "hf.jsonl")
        assert _logprobs(out) == pytest.approx(_logprobs(tmp_path / "hf.jsonl"), abs=1e-4)
    assert any(c[2] == "stop" for row in _texts(tmp_path / "hf.jsonl") for c in row)  # the stop string acted


def test_http_judge_reads_the_served_models_top_logprobs(served):
    from posttrain.generation.judge import HTTPJudge

    reply = httpx.post(
        served + "/chat/completions",
        json={
            "model": "tiny-test",
            "messages": [{"role": "user", "content": "A or B?"}],
            "max_tokens": 1,
            "temperature": 0,
            "logprobs": True,
            "top_logprobs": 5,
        },
    ).json()
    top = reply["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    labels = [top[0]["token"].strip(), top[1]["token"].strip()]  # two tokens the model does rank
    probs = HTTPJudge(served, api_model="tiny-test").choose(["A or B?"], labels)[0]
    assert probs[0] > probs[1] and sum(probs) == pytest.approx(1.0)
