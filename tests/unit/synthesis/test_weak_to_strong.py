"""Weak-to-strong selection against scripted weak and strong models: final-answer consistency
decides the SFT rows, the strong model's disagreeing samples give the preference pairs."""

import json

from posttrain.cli import main
from posttrain.data.sources import load_records
from tests.unit.synthesis.scripted import model_overrides, scripted_model

WEAK = {
    "q1": "5 + 0 = 5. The answer is 5.",
    "q2": "The answer is 4.",
    "q3": "I do not know.",
    "q4": "So \\boxed{1/2}",
    "q5": "The answer is 3.",
}
STRONG = {
    "q1": ["It is 5.", "5", "Maybe 7"],
    "q2": ["6", "The answer is 6", "4"],
    "q3": ["1", "1", "1"],
    "q4": ["0.5", "The answer is 0.50", "\\boxed{\\frac{1}{2}}"],
    "q5": ["no idea", "none", "unsure"],
}
REFERENCE = {"q1": "5", "q4": "0.5"}


def scripted(table):
    seen = {}

    def respond(prompt):
        key = prompt.split(":")[0]
        answers = table[key] if isinstance(table[key], list) else [table[key]]
        seen[key] = seen.get(key, -1) + 1
        return answers[seen[key] % len(answers)]

    return respond


def run(tmp_path, weak_url, strong_url, *extra):
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        "".join(
            json.dumps({"prompt": f"{q}: compute it", **({"reference": REFERENCE[q]} if q in REFERENCE else {})}) + "\n"
            for q in WEAK
        )
    )
    shots = tmp_path / "shots.jsonl"
    shots.write_text(
        json.dumps(
            {"messages": [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "The answer is 2."}]}
        )
        + "\n"
    )
    sets = [
        *model_overrides("weak", weak_url),
        *model_overrides("strong", strong_url),
        "strong.concurrency=1",
        f"questions={questions}",
        f"strong_few_shot={shots}",
        "n_strong=3",
        *extra,
    ]
    return main(["synth", "weak-to-strong", "--out", str(tmp_path / "out"), *sum((["--set", s] for s in sets), [])])


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_majority_consistency_selects_and_contrasts(tmp_path):
    with scripted_model(scripted(WEAK)) as (weak_url, weak), scripted_model(scripted(STRONG)) as (strong_url, strong):
        assert run(tmp_path, weak_url, strong_url) == 0
    out = tmp_path / "out"
    sft = read(out / "sft.jsonl")
    assert [r["row"] for r in sft] == [1, 4]
    assert sft[0]["messages"] == [
        {"role": "user", "content": "q1: compute it"},
        {"role": "assistant", "content": WEAK["q1"]},
    ]
    pairs = read(out / "pairs.jsonl")
    assert [(p["row"], p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs] == [
        (1, "It is 5.", "Maybe 7")
    ]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["removed_by"] == {"disagree": 1, "strong_no_answer": 1, "weak_no_answer": 1}
    assert manifest["counts"]["pairs"] == 1 and manifest["counts"]["kept_correct"] == 2
    assert len(weak.prompts) == 5 and len(strong.prompts) == 15
    assert all(
        chat[:2] == [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "The answer is 2."}]
        for chat in strong.chats
    )  # the strong model answers in context
    assert all(len(chat) == 1 for chat in weak.chats)
    assert len(load_records(out / "pairs.jsonl", "preference").records) == 1  # what `posttrain dpo` reads
    assert len(load_records(out / "sft.jsonl", "conversation").records) == 2


def test_any_agreement_and_strong_responses(tmp_path):
    with scripted_model(scripted(WEAK)) as (weak_url, _), scripted_model(scripted(STRONG)) as (strong_url, _):
        assert run(tmp_path, weak_url, strong_url, "agreement=any", "sft_response=strong", "pairs_per_question=2") == 0
    sft = read(tmp_path / "out" / "sft.jsonl")
    assert [(r["row"], r["messages"][-1]["content"]) for r in sft] == [(1, "It is 5."), (2, "4"), (4, "0.5")]
    pairs = read(tmp_path / "out" / "pairs.jsonl")
    assert [(p["row"], p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs] == [
        (1, "It is 5.", "Maybe 7"),
        (2, "4", "6"),
        (2, "4", "The answer is 6"),
    ]


def test_everything_disagreeing_fails_naming_the_filter(tmp_path, capsys):
    weak = {q: "The answer is 99." for q in WEAK}
    with scripted_model(scripted(weak)) as (weak_url, _), scripted_model(scripted(STRONG)) as (strong_url, _):
        assert run(tmp_path, weak_url, strong_url) == 2
    err = capsys.readouterr().err
    assert "no agreeing questions left (disagree removed 4, strong_no_answer removed 1)" in err
    assert (
        main(
            [
                "synth",
                "weak-to-strong",
                "--out",
                str(tmp_path / "o"),
                "--set",
                f"questions={tmp_path / 'q.jsonl'}",
                "--set",
                "weak.model=w",
                "--set",
                "weak.base_url=http://127.0.0.1:9/v1",
            ]
        )
        == 2
    )
    assert "strong.model: missing" in capsys.readouterr().err


def test_hf_backend_greedy_model_agrees_with_itself(tmp_path, tiny_dir):
    """The in-process hf path (chat template, batching): one greedy model as weak and strong
    answers every question identically, so every question is kept and no pair is made."""
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps({"prompt": f"What is {a} + 2?"}) + "\n" for a in range(3)))
    sets = [
        f"questions={questions}",
        "extract=text",
        "n_strong=2",
        "weak.max_new_tokens=6",
        "strong.max_new_tokens=6",
        "strong.temperature=0",
    ]
    sets += [f"{role}.{key}" for role in ("weak", "strong") for key in (f"model={tiny_dir}", "backend=hf")]
    args = ["synth", "weak-to-strong", "--out", str(tmp_path / "out"), *sum((["--set", s] for s in sets), [])]
    assert main(args) == 0
    samples = read(tmp_path / "out" / "samples.jsonl")
    assert all(s["weak"]["text"] == t["text"] for s in samples for t in s["strong"])
    assert len(read(tmp_path / "out" / "sft.jsonl")) == 3 and read(tmp_path / "out" / "pairs.jsonl") == []
