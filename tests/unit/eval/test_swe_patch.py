"""The swe_patch task on the shipped tiny repositories: the gold diff and the gold search/replace
edits resolve every instance; a wrong fix, a diff that does not apply, a never-ending fix and a
row without tests are each recorded with their reason while the run goes on."""

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from posttrain.errors import UserError
from posttrain.eval.engine import run_tasks
from tests.unit.eval.fakes import ScriptedBackend
from tests.unit.eval.swe_repos import instances

SHIPPED = Path(__file__).parents[3] / "examples" / "code_eval" / "swe_tiny.jsonl"


@pytest.fixture(scope="module")
def tokenizer(tiny_dir):
    return AutoTokenizer.from_pretrained(tiny_dir)


def _evaluate(tokenizer, rows, answer_of, tmp_path):
    data = tmp_path / "swe.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    by_issue = {r["problem_statement"]: r for r in rows}

    def answer(prompt):
        return answer_of(next(r for issue, r in by_issue.items() if issue in prompt))

    return run_tasks(
        ScriptedBackend(tokenizer, answer),
        ["swe_patch"],
        data={"swe_patch": str(data)},
        overrides={"swe_patch": ["timeout_s=10"]},
    )[0]


def test_the_shipped_file_is_the_generators_output():
    assert [json.loads(line) for line in SHIPPED.read_text().splitlines()] == instances()


@pytest.mark.parametrize("field, answer_format", [("gold_patch", "diff"), ("gold_edits", "search_replace")])
def test_the_gold_fix_resolves_every_instance(tokenizer, tmp_path, field, answer_format):
    wrap = (lambda text: f"Here is the fix:\n```diff\n{text}```\n") if field == "gold_patch" else (lambda text: text)
    result = _evaluate(tokenizer, instances(), lambda row: wrap(row[field]), tmp_path)
    assert [s.extra["status"] for s in result.samples] == ["resolved"] * 4, [s.extra for s in result.samples]
    assert {s.extra["answer_format"] for s in result.samples} == {answer_format}
    assert result.values()["resolved"] == 1.0 and result.values()["applied"] == 1.0
    assert "Fix the following issue" in result.samples[0].prompt and "### calc/ops.py" in result.samples[0].prompt


def test_unfixed_and_broken_answers_are_recorded_with_their_reason(tokenizer, tmp_path):
    rows = instances()
    untested = {**rows[3], "instance_id": "no-tests", "problem_statement": "An issue without tests."}
    del untested["tests"]
    answers = {
        "calc-divide": "--- a/calc/ops.py\n+++ b/calc/ops.py\n@@ -5,2 +5,2 @@\n def divide(a, b):\n-    return a // b\n"
        "+    return float(a // b)\n",  # applies, still wrong
        "text-vowels": "--- a/textutil.py\n+++ b/textutil.py\n@@ -1,1 +1,1 @@\n-VOWELS = 'xyz'\n+VOWELS = 'aeiouAEIOU'\n",
        "stack-pop": "--- a/stack.py\n+++ b/stack.py\n@@ -9,3 +9,4 @@\n         if not self.items:\n-            return None\n"
        "+            while True:\n+                pass\n         return self.items.pop()\n",
        "shop-discount": "I am not sure how to fix this.",
        "no-tests": rows[3]["gold_patch"],
    }
    result = _evaluate(tokenizer, rows + [untested], lambda row: answers[row["instance_id"]], tmp_path)
    verdicts = {s.reference: s.extra for s in result.samples}
    assert verdicts["calc-divide"]["status"] == "tests fail" and "FAILED" in verdicts["calc-divide"]["reason"]
    assert verdicts["text-vowels"]["status"] == "patch does not apply"
    assert verdicts["text-vowels"]["reason"] == "diff does not apply: hunk 1 of textutil.py does not match the file"
    assert verdicts["stack-pop"]["status"] == "timeout"
    assert verdicts["shop-discount"] == {
        "status": "patch does not apply",
        "answer_format": None,
        "reason": "no unified diff and no search/replace edit in the answer",
    }
    assert verdicts["no-tests"]["status"] == "no tests"
    values = result.values()
    assert values["resolved"] == 0.0 and values["applied"] == 0.5 and values["no_tests"] == 1.0


def test_a_malformed_row_is_one_error_naming_the_row(tmp_path):
    from posttrain.eval.tasks.builtin import resolve_task
    from posttrain.eval.tasks.documents import load_documents

    rows = instances()[:1] + [{**instances()[1], "repo": ["textutil.py"]}]
    data = tmp_path / "swe.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(UserError, match=r"row 2: not a 'swe_patch' row: 'repo' must be a mapping of file path"):
        load_documents(resolve_task("swe_patch", data=str(data)))
