"""Parity with lm-evaluation-harness (installed with the dev extra): the same MMLU prompt and
continuations, and the same acc/acc_norm picks from the same log-likelihoods. The harness task is
built from its own MMLU template (tasks/mmlu/default/_default_template_yaml) over a local file."""

import json
import random

import pytest

from posttrain.eval.engine import run_task
from posttrain.eval.tasks.builtin import resolve_task
from tests.unit.eval.fakes import ScriptedBackend

pytest.importorskip("lm_eval")

ROWS = [
    {"question": "What is 2+2? ", "choices": ["3", "4", "five", "22"], "answer": 1, "subject": "high_school_mathematics"},
    {"question": "Pick one", "choices": ["ab", "abcd", "x y", "yy"], "answer": 0, "subject": "abstract_algebra"},
    {"question": "Which is a colour?", "choices": ["red", "table", "seven", "run fast"], "answer": 0,
     "subject": "miscellaneous"},
]
HARNESS_MMLU = dict(
    output_type="multiple_choice", test_split="test", doc_to_target="answer",
    doc_to_text="{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}\nD. {{choices[3]}}\nAnswer:",
    doc_to_choice=["A", "B", "C", "D"], metric_list=[{"metric": "acc"}, {"metric": "acc_norm"}])


def _harness_task(path, **config):
    from lm_eval.api.task import ConfigurableTask

    return ConfigurableTask(config={"task": "parity", "dataset_path": "json",
                                    "dataset_kwargs": {"data_files": {"test": str(path)}}, **HARNESS_MMLU, **config})


@pytest.fixture()
def rows_file(tmp_path):
    path = tmp_path / "mmlu.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return path


@pytest.mark.parametrize("index", range(len(ROWS)))
def test_mmlu_prompt_and_continuations_match_the_harness(tiny_model, rows_file, index):
    _, tokenizer = tiny_model
    subject = ROWS[index]["subject"].replace("_", " ")
    harness = _harness_task(rows_file, description=f"The following are multiple choice questions (with answers) "
                                                  f"about {subject}.\n\n")
    doc = harness.test_docs()[index]
    expected = [request.arguments for request in harness.construct_requests(doc, harness.fewshot_context(doc, 0))]
    backend = ScriptedBackend(tokenizer, is_chat=False)
    task = resolve_task("mmlu", [], data=str(rows_file))
    run_task(task, backend)
    ours = [(backend._text(r.context).removeprefix(tokenizer.bos_token), backend._text(r.continuation))
            for r in backend.scored[4 * index: 4 * index + 4]]
    assert ours == expected


def test_acc_and_acc_norm_match_the_harness_on_random_loglikelihoods(tiny_model, rows_file):
    _, tokenizer = tiny_model
    harness = _harness_task(rows_file, doc_to_choice="{{choices}}", doc_to_text="{{question}}")
    rng = random.Random(0)
    for trial in range(20):
        logprobs = {(row["question"], choice): -rng.uniform(0.5, 12) for row in ROWS for choice in row["choices"]}
        backend = ScriptedBackend(tokenizer, is_chat=False, score=lambda ctx, cont: logprobs[
            next((q, c) for q, c in logprobs if q.strip() in ctx and " " + c == cont)])
        samples = run_task(resolve_task("multiple_choice", [], data=str(rows_file)), backend).samples
        for doc, row, sample in zip(harness.test_docs(), ROWS, samples):
            results = [(logprobs[(row["question"], choice)], False) for choice in row["choices"]]
            expected = harness.process_results(doc, results)
            assert {k: sample.scores[k] for k in ("acc", "acc_norm")} == expected, trial
