"""`posttrain synth magpie | non-instructional | fusechat` as a user runs them: Magpie against a
scripted OpenAI-compatible server (token-id prompts = the pre-query prefix; every filter removes
its planted row; all filtered out = exit 2 naming the counts), Magpie on the tiny model killed with
SIGKILL and rerun (every row once), non-instructional pairs split at the recorded boundary, and
FuseChat sampling two tiny models into a file that `posttrain score --pairs per-source` reads."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from transformers import AutoTokenizer

from posttrain.cli import main
from posttrain.data.records import to_record
from posttrain.synthesis.magpie import pre_query_ids
from tests.integration.conftest import write_jsonl
from tests.unit.eval.fakes import json_server

# seed of the query request -> (query, finish_reason); the answer follows from the query
QUERIES = {
    0: ("How many apples are in two boxes of three apples?", "stop"),
    1: ("Explain how the sum of two numbers works", "length"),  # incomplete
    2: ("Hi", "stop"),  # length (< 2 words)
    3: ("count count count count count count count count", "stop"),  # repetition
    4: ("Write a story about a dragon, please.", "stop"),  # refusal
    5: ("Quelle est la capitale de la France et pourquoi est-elle si belle ?", "stop"),  # language
    6: ("how many apples are in two boxes of three apples", "stop"),  # dedup of 0
    7: ("What is the difference between seven and four?", "stop"),
}
ANSWERS = {"dragon": "I'm sorry, but I cannot write that."}


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


class Scripted:
    """The server's replies: a query for the bare pre-query prefix (by seed), else an answer; every
    (prompt ids, seed) it was sent is kept in `prompts`."""

    def __init__(self, tokenizer):
        self.tokenizer, self.prompts, self.url = tokenizer, [], None

    def reply(self, body: dict, headers: dict) -> tuple[int, dict]:
        self.prompts.append((body["prompt"], body["seed"]))
        text = self.tokenizer.decode(body["prompt"])
        if text.endswith("user<|end_header_id|>\n\n"):
            query, reason = QUERIES[body["seed"]]
            return 200, {"choices": [{"text": query, "finish_reason": reason}]}
        answer = next((a for key, a in ANSWERS.items() if key in text), "Here is a careful answer.")
        return 200, {"choices": [{"text": answer, "finish_reason": "stop"}]}


@pytest.fixture()
def server(tiny_dir):
    scripted = Scripted(AutoTokenizer.from_pretrained(tiny_dir))
    # owned_by vllm: a server known to take token-id prompts, so magpie's pre-query prefix is sent
    # as ids (a server not known to is sent the rendered text: tests/unit/generation/test_openai_completions.py)
    with json_server(
        scripted.reply, models=[{"id": "scripted", "object": "model", "owned_by": "vllm"}]
    ) as scripted.url:
        yield scripted


def test_magpie_over_a_server_filters_each_planted_row(server, tiny_dir, tmp_path, capsys):
    out = tmp_path / "magpie.jsonl"
    base = [
        "synth",
        "magpie",
        "--out",
        str(out),
        "--set",
        "source.backend=openai",
        "--set",
        "source.model=scripted",
        "--set",
        f"source.base_url={server.url}",
        "--set",
        "source.endpoint=completions",
        "--set",
        f"source.tokenizer={tiny_dir}",
        "--set",
        "n_rows=8",
        "--set",
        "batch_size=8",
        "--set",
        "filters.min_query_words=2",
    ]
    assert main(base) == 0
    rows = _read(out)
    assert [r["messages"][0]["content"] for r in rows] == [QUERIES[0][0], QUERIES[7][0]]
    assert rows[0]["messages"][1] == {"role": "assistant", "content": "Here is a careful answer."}
    assert all(to_record(r, "conversation") for r in rows)  # what `posttrain sft` reads
    counts = json.loads((tmp_path / "magpie.manifest.json").read_text())["counts"]
    assert counts == {
        "generated": 8,
        "kept": 2,
        "removed": {"incomplete": 1, "length": 1, "repetition": 1, "refusal": 1, "language": 1, "dedup": 1},
    }
    prefix = pre_query_ids(server.tokenizer)
    queries = sorted(seed for ids, seed in server.prompts if ids == prefix)
    assert queries == list(range(8))  # each query sampled from the bare prefix, seeds distinct
    assert len(server.prompts) == 8 + 7  # one answer per complete query, none for the cut one

    sent = len(server.prompts)  # other filters: the raw job is reused, nothing sampled again
    assert main(base + ["--set", "filters.languages=[de]"]) == 2
    err = capsys.readouterr().err
    assert (
        "magpie.jsonl: the filters removed all 8 generated rows (incomplete 1, length 1, repetition 1, "
        "refusal 1, language 4, dedup 0)" in err
    )
    assert len(server.prompts) == sent and not out.exists()


def _magpie_args(tiny_dir, out, rows=8):
    return [
        "synth",
        "magpie",
        "--out",
        str(out),
        "--set",
        f"source.model={tiny_dir}",
        "--set",
        f"n_rows={rows}",
        "--set",
        "batch_size=1",
        "--set",
        "turns=2",
        "--set",
        "query.max_new_tokens=6",
        "--set",
        "response.max_new_tokens=6",
        "--set",
        "filters.skip=[incomplete,language,repetition]",
    ]


KILLED_ROWS = 40  # enough one-row chunks that the kill lands mid-job on a fast, idle machine too


def test_magpie_killed_and_rerun_gives_every_row_once(tiny_dir, tmp_path):
    out = tmp_path / "m.jsonl"
    parts = tmp_path / "m.raw.jsonl.parts"
    args = _magpie_args(tiny_dir, out, KILLED_ROWS)
    proc = subprocess.Popen(
        [sys.executable, "-m", "posttrain", *args],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline and len(list(parts.glob("chunk-*.jsonl"))) < 3:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = {p.name: p.read_text() for p in parts.glob("chunk-*.jsonl")}
    assert 3 <= len(kept) < KILLED_ROWS and not out.exists()
    assert main(args) == 0
    raw = _read(tmp_path / "m.raw.jsonl")
    assert [r["item"] for r in raw] == list(range(KILLED_ROWS))  # none missing, none twice
    for name, text in kept.items():  # finished chunks kept as they were
        assert json.loads(text) == raw[int(name[6:12])]
    assert json.loads((tmp_path / "m.manifest.json").read_text())["counts"]["generated"] == KILLED_ROWS


def test_non_instructional_pairs_split_at_the_recorded_boundary(tiny_dir, tmp_path):
    texts = [
        "The farmer counts apples every day and the child reads books after school.",
        "A teacher  writes numbers\nin the morning, one by one.",
        "Too short.",
    ]
    docs = write_jsonl(tmp_path / "docs.jsonl", [{"text": t} for t in texts])
    out = tmp_path / "ni.jsonl"
    assert (
        main(
            [
                "synth",
                "non-instructional",
                "--out",
                str(out),
                "--set",
                f"input={docs}",
                "--set",
                f"teacher.model={tiny_dir}",
                "--set",
                "sampling.max_new_tokens=8",
                "--set",
                "max_repetition=1",
            ]
        )
        == 0
    )
    rows = _read(out)
    assert [r["source_row"] for r in rows] == [1, 2]
    for row in rows:
        text, k = texts[row["source_row"] - 1], row["split_offset"]
        assert row["messages"][0] == {"role": "user", "content": text[:k]} and row["second_half"] == text[k:]
        assert text[k].isspace() and not text[k - 1].isspace() and abs(k - len(text) / 2) < 8
        assert row["messages"][1]["role"] == "assistant" and row["messages"][1]["content"]
    manifest = json.loads((tmp_path / "ni.manifest.json").read_text())
    assert manifest["counts"]["too_short"] == 1 and manifest["counts"]["kept"] == 2


def char_count(sample, completion):
    """A scorer for the test: the completion's length, so scores differ and pairs form."""
    return float(len(completion))


def test_fusechat_two_tiny_models_then_score_per_source(tiny_dir, tmp_path):
    from posttrain.model.tiny import build_tiny

    other = build_tiny(tmp_path / "other", preset="test", seed=1)
    prompts = write_jsonl(
        tmp_path / "p.jsonl", [{"prompt": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(3)]
    )
    recipe = tmp_path / "fc.yaml"
    recipe.write_text(
        f"prompts: {prompts}\nn: 3\nsampling: {{max_new_tokens: 8}}\nsources:\n"
        f"  - {{name: first, model: {tiny_dir}}}\n  - {{name: second, model: {other}}}\n"
    )
    out = tmp_path / "fc.jsonl"
    assert main(["synth", "fusechat", str(recipe), "--out", str(out)]) == 0
    rows = _read(out)
    assert [(r["row"], r["source"]) for r in rows] == [(i, s) for i in (1, 2, 3) for s in ("first", "second")]
    assert all(len(r["completions"]) == 3 for r in rows) and rows[1]["model"] == str(other)
    assert (
        main(
            [
                "score",
                "--data",
                str(out),
                "--out",
                str(tmp_path / "s.jsonl"),
                "--quiet",
                "--scorer",
                "tests.integration.test_synth:char_count",
                "--pairs",
                "per-source",
            ]
        )
        == 0
    )
    pairs = _read(tmp_path / "s.pairs.jsonl")
    assert len(pairs) == 3
    texts = {(r["prompt"], c["text"]): r["source"] for r in rows for c in r["completions"]}
    for pair in pairs:  # chosen and rejected written by one source, the longer one chosen
        assert texts[(pair["prompt"], pair["chosen"])] == texts[(pair["prompt"], pair["rejected"])]
        assert pair["chosen_score"] > pair["rejected_score"]


def test_bad_input_is_one_line(tmp_path, capsys):
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "x"}])
    (tmp_path / "empty.txt").write_text("")
    wrong = write_jsonl(tmp_path / "wrong.jsonl", [{"text": "no prompt here"}])
    cases = [
        (["synth", "magpie", "--out", "o.jsonl"], "synth magpie: source: no model given"),
        (
            ["synth", "magpie", "--out", "o.jsonl", "--set", "source.model=m", "--set", "source.backend=openai"],
            "backend openai needs base_url",
        ),
        (
            [
                "synth",
                "magpie",
                "--out",
                "o.jsonl",
                "--set",
                "source.model=m",
                "--set",
                "source.backend=openai",
                "--set",
                "source.base_url=http://127.0.0.1:9/v1",
                "--set",
                "source.max_retries=0",
            ],
            "cannot reach",
        ),
        (
            ["synth", "non-instructional", "--out", "o.jsonl", "--set", f"input={tmp_path / 'empty.txt'}"],
            "empty.txt: no documents",
        ),
        (
            ["synth", "fusechat", "--out", "o.jsonl", "--set", f"prompts={prompts}", "--set", "sources=[]"],
            "needs at least two sources",
        ),
        (
            [
                "synth",
                "fusechat",
                "--out",
                "o.jsonl",
                "--set",
                "prompts=nope.jsonl",
                "--set",
                "sources=[{name: a, model: x}, {name: b, model: y}]",
            ],
            "nope.jsonl: prompt file not found",
        ),
        (["synth", "magpie", "--set", "turns=0"], "turns"),
        (["synth", "magpie", "--out", "o.jsonl", "--set", f"source.model={tmp_path / 'no-model'}"], "no-model"),
        (
            [
                "synth",
                "fusechat",
                "--out",
                "o.jsonl",
                "--set",
                f"prompts={wrong}",
                "--set",
                "sources=[{name: a, model: x}, {name: b, model: y}]",
            ],
            "wrong.jsonl: row 1",
        ),
        (
            ["synth", "non-instructional", "--out", "o.jsonl", "--set", f"input={wrong}", "--set", "text_field=body"],
            "wrong.jsonl: row 1: field 'body'",
        ),
    ]
    for args, message in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
