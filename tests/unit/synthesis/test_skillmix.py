"""Instruct-SkillMix against a scripted teacher: topics -> skills -> k-skill combinations ->
instruction + answer, with every row's skills recorded and drawn from the extracted list."""

import json
import re

import pytest

from posttrain.cli import main
from posttrain.errors import UserError
from posttrain.synthesis.pipeline import parse_list
from posttrain.synthesis.skillmix import skill_combinations
from tests.unit.synthesis.scripted import model_overrides, scripted_model

TOPICS = ["cooking", "physics", "travel"]


def teacher(prompt: str) -> str:
    if "distinct topics" in prompt:
        return "Here are some topics:\n" + "\n".join(
            f"{i + 1}. **{t.title()}**: questions about {t}" for i, t in enumerate(TOPICS)
        )
    if prompt.startswith("Topic: "):
        topic = prompt.split("\n", 1)[0].removeprefix("Topic: ").lower()
        return "\n".join(f"- {topic} skill {j}" for j in range(3))
    if "kinds of request" in prompt:
        return '["asking for advice", "requesting a story"]'
    if prompt.startswith("Write one request"):
        skills = re.findall(r"^- (.+)$", prompt, re.M)
        return "Request: Please use " + " and ".join(skills) + "."
    if prompt.startswith("Answer the following request"):
        return "ANSWER to " + prompt.split("Request:\n", 1)[1].split("\n\n")[0]
    raise AssertionError(f"unexpected prompt {prompt[:60]!r}")


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_rows_carry_k_distinct_extracted_skills(tmp_path, capsys):
    out = tmp_path / "out"
    with scripted_model(teacher) as (url, chat):
        args = [
            "synth",
            "skillmix",
            "--out",
            str(out),
            "--set",
            "n_examples=12",
            "--set",
            "k=3",
            "--set",
            "batch_size=5",
            *sum((["--set", o] for o in model_overrides("teacher", url)), []),
        ]
        assert main(args) == 0
        inventory = json.loads((out / "skills.json").read_text())
        assert inventory["topics"] == ["Cooking", "Physics", "Travel"]
        names = [s["name"] for s in inventory["skills"]]
        assert len(names) == 9 and names[0] == "cooking skill 0" and inventory["skills"][0]["topic"] == "Cooking"
        assert inventory["query_types"] == ["asking for advice", "requesting a story"]
        rows = read(out / "sft.jsonl")
        assert len(rows) == 12
        combos = set()
        for row in rows:
            assert len(row["skills"]) == 3 == len(set(row["skills"])) and set(row["skills"]) <= set(names)
            user, assistant = row["messages"][0]["content"], row["messages"][1]["content"]
            assert user == "Please use " + " and ".join(row["skills"]) + "."  # the request for these skills
            assert assistant == "ANSWER to " + user
            assert row["topic"] in inventory["topics"] and row["query_type"] in inventory["query_types"]
            combos.add(frozenset(row["skills"]))
        assert len(combos) == 12  # no combination twice
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["counts"]["sft_rows"] == 12 and manifest["counts"]["skills"] == 9
        # 1 topics + 3 skill lists + 1 query types + 12 instructions + 12 answers
        assert len(chat.prompts) == 29
        calls = len(chat.prompts)
        assert main(args) == 0  # a rerun of the finished job asks nothing again
        assert len(chat.prompts) == calls


def test_skills_file_and_errors(tmp_path):
    skills = tmp_path / "skills.txt"
    skills.write_text("1. humour\n2. brevity\n3. rigour\n")
    out = tmp_path / "out"
    with scripted_model(teacher) as (url, chat):
        base = [
            "synth",
            "skillmix",
            "--out",
            str(out),
            "--set",
            f"skills_file={skills}",
            *sum((["--set", o] for o in model_overrides("teacher", url)), []),
        ]
        assert main([*base, "--set", "n_examples=3"]) == 0
        assert not any("distinct topics" in p or p.startswith("Topic: ") for p in chat.prompts)
        rows = read(out / "sft.jsonl")
        assert sorted(tuple(sorted(r["skills"])) for r in rows) == [
            ("brevity", "humour"),
            ("brevity", "rigour"),
            ("humour", "rigour"),
        ]
        assert main([*base, "--set", "n_examples=4", "--out", str(tmp_path / "o2")]) == 2  # only 3 pairs exist
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    with pytest.raises(UserError, match="empty.json: no skills"):
        from posttrain.synthesis.skillmix import read_skills_file

        read_skills_file(empty)
    assert main(["synth", "skillmix", "--out", str(out / "x")]) == 2  # no teacher and no skills file


def test_empty_instructions_are_filtered_and_a_run_keeping_nothing_fails(tmp_path, capsys):
    skills = tmp_path / "skills.json"
    skills.write_text(json.dumps({"skills": ["a", "b", "c"], "topics": ["t"]}))
    with scripted_model(lambda prompt: "   ") as (url, _):
        code = main(
            [
                "synth",
                "skillmix",
                "--out",
                str(tmp_path / "o"),
                "--set",
                f"skills_file={skills}",
                "--set",
                "n_examples=3",
                *sum((["--set", o] for o in model_overrides("teacher", url)), []),
            ]
        )
    assert code == 2
    assert "empty_instruction removed 3" in capsys.readouterr().err


def test_parse_list_and_combinations():
    assert parse_list("Sure!\n1) Alpha - the first\n2. Beta\n* beta\n- `Gamma`:\n") == ["Alpha", "Beta", "Gamma"]
    assert parse_list('```json\n["x", "y"]\n```') == ["x", "y"]
    assert parse_list("one\ntwo\n") == ["one", "two"]
    combos = skill_combinations(50, 2, 300, seed=1)
    assert len(set(combos)) == 300 and all(len(set(c)) == 2 for c in combos)
    assert combos == skill_combinations(50, 2, 300, seed=1) != skill_combinations(50, 2, 300, seed=2)
    with pytest.raises(UserError, match="only 10 combinations"):
        skill_combinations(5, 2, 11, seed=0)


def test_failed_calls_are_retried_by_a_rerun(tmp_path, capsys):
    skills = tmp_path / "skills.txt"
    skills.write_text("humour\nbrevity\nrigour\nwarmth\n")
    out = tmp_path / "out"
    with scripted_model(teacher) as (url, chat):
        args = [
            "synth",
            "skillmix",
            "--out",
            str(out),
            "--set",
            f"skills_file={skills}",
            "--set",
            "n_examples=6",
            "--set",
            "batch_size=3",
            *sum((["--set", o] for o in model_overrides("teacher", url)), []),
        ]
        chat.down_after = 9  # batch 0 (3 requests + 3 answers) done, batch 1's answers fail
        assert main(args) == 1
        assert "posttrain: 3 of 6 items failed" in capsys.readouterr().out
        chat.down_after = None
        assert main(args) == 0
        assert len(chat.prompts) == 6 + 3 + 6  # batch 0 once; batch 1's requests twice, its answers once
    rows = read(out / "sft.jsonl")
    assert len(rows) == 6 and len({frozenset(r["skills"]) for r in rows}) == 6
