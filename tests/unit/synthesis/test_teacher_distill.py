"""Teacher distillation against a scripted teacher: self-instruct rounds with m in-context tasks,
the length / ROUGE-L novelty filters against seeds and earlier rounds, rationale answers, resume."""

import json

import pytest

from posttrain.cli import main
from posttrain.errors import UserError
from posttrain.synthesis.teacher_distill import NoveltyFilter, read_seed_tasks
from tests.unit.synthesis.scripted import model_overrides, scripted_model

SEEDS = ["Write a short poem about the sea.", "Explain why the sky is blue.", "Translate 'good morning' into French."]
CANDIDATES = [
    "New task: Write a short poem about the sea at night.",  # ROUGE-L 0.875 with seed 1
    "Describe three uses of a paperclip in an office.",
    "Hi there",  # 2 words
    "Describe three uses of a paperclip in a kitchen.",  # ROUGE-L 0.889 with round 0's task
    "Task 4: List four animals that live in the Arctic.",
    "",
]


class Teacher:
    def __init__(self, fail_from: int | None = None):
        self.next, self.fail_from = 0, fail_from

    def __call__(self, prompt: str) -> str:
        if prompt.startswith("Here are some tasks"):
            self.next += 1
            return CANDIDATES[self.next - 1]
        if "paperclip" in prompt:
            return "A paperclip holds paper.\nAnswer: holding, pointing, resetting"
        return "Polar bears live there."  # no 'Answer:' line


def run(tmp_path, url, *extra):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"instruction": s}) + "\n" for s in SEEDS))
    return main(
        [
            "synth",
            "teacher-distill",
            "--out",
            str(tmp_path / "out"),
            "--set",
            f"seed_tasks={seeds}",
            "--set",
            "rounds=2",
            "--set",
            "requests_per_round=3",
            "--set",
            "in_context=2",
            "--set",
            "rationale=true",
            *sum((["--set", o] for o in model_overrides("teacher", url)), []),
            "--set",
            "teacher.concurrency=1",
            *extra,
        ]
    )


def test_expansion_filters_and_rationale_answers(tmp_path):
    teacher = Teacher()
    with scripted_model(teacher) as (url, chat):
        assert run(tmp_path, url) == 0
    out = tmp_path / "out"
    tasks = [json.loads(line) for line in (out / "tasks.jsonl").read_text().splitlines()]
    assert [t["removed_by"] for t in tasks] == ["rouge_l", None, "length", "rouge_l", None, "empty"]
    assert tasks[0]["rouge_l_max"] == pytest.approx(0.875) and tasks[0]["most_similar"] == SEEDS[0]
    assert tasks[3]["most_similar"] == "Describe three uses of a paperclip in an office."  # an earlier round's task
    assert tasks[4]["task"] == "List four animals that live in the Arctic."  # label stripped
    expand = [p for p in chat.prompts if p.startswith("Here are some tasks")]
    assert len(expand) == 6 and all("Task 2:" in p and "Task 3:" not in p for p in expand)  # m = 2 shown
    sft = [json.loads(line) for line in (out / "sft.jsonl").read_text().splitlines()]
    assert sft == [
        {
            "messages": [
                {"role": "user", "content": "Describe three uses of a paperclip in an office."},
                {"role": "assistant", "content": "A paperclip holds paper.\nAnswer: holding, pointing, resetting"},
            ],
            "origin": "generated",
        }
    ]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["removed_by"] == {
        "answer.no_final_answer": 1,
        "expand.empty": 1,
        "expand.length": 1,
        "expand.rouge_l": 2,
    }
    assert manifest["counts"]["new_tasks"] == 2 and manifest["counts"]["sft_rows"] == 1


def test_a_failed_round_is_redone_on_rerun_against_the_rebuilt_pool(tmp_path):
    teacher = Teacher()
    with scripted_model(teacher) as (url, chat):
        chat.down_after = 3  # round 0's three requests are answered, round 1's get 503
        assert run(tmp_path, url) == 1  # round 1 failed: nothing answered yet
        assert not (tmp_path / "out" / "sft.jsonl").exists()
        chat.down_after = None
        assert run(tmp_path, url) == 0
    expand = [p for p in chat.prompts if p.startswith("Here are some tasks")]
    assert len(expand) == 6  # round 0 was not asked again
    tasks = [json.loads(line) for line in (tmp_path / "out" / "tasks.jsonl").read_text().splitlines()]
    assert [t["removed_by"] for t in tasks] == ["rouge_l", None, "length", "rouge_l", None, "empty"]


def test_bad_seed_files_are_one_line_errors(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(UserError, match="empty.jsonl: no seed tasks"):
        read_seed_tasks(str(empty))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"output": "x"}\n')
    with pytest.raises(UserError, match="bad.jsonl: row 1: field 'instruction'"):
        read_seed_tasks(str(bad))
    assert (
        main(
            [
                "synth",
                "teacher-distill",
                "--out",
                str(tmp_path / "o"),
                "--set",
                f"seed_tasks={empty}",
                "--set",
                "teacher.model=m",
                "--set",
                "teacher.base_url=http://127.0.0.1:9/v1",
            ]
        )
        == 2
    )
    assert capsys.readouterr().err.strip().endswith("empty.jsonl: no seed tasks in the file (it is empty)")
    seeds = tmp_path / "s.jsonl"
    seeds.write_text('{"prompt": "Say hi to the reader."}\n')
    assert (
        main(
            [
                "synth",
                "teacher-distill",
                "--out",
                str(tmp_path / "o"),
                "--set",
                f"seed_tasks={seeds}",
                "--set",
                "teacher.model=m",
            ]
        )
        == 2
    )
    assert "teacher.base_url: missing" in capsys.readouterr().err


def test_novelty_filter_matches_rouge_l_by_hand():
    f = NoveltyFilter(0.7, 3, 150)
    # LCS 4 of 5 and 6 tokens: P = 4/5, R = 4/6 -> F = 2PR/(P+R) = 8/11
    d = f.judge("the cat sat on mats", ["the cat sat on the mat"])
    assert d["rouge_l_max"] == pytest.approx(8 / 11, abs=1e-4) and d["removed_by"] == "rouge_l"
    assert f.judge("dogs bark at night", ["the cat sat on the mat"])["removed_by"] is None
