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
    {
        "question": "What is 2+2? ",
        "choices": ["3", "4", "five", "22"],
        "answer": 1,
        "subject": "high_school_mathematics",
    },
    {"question": "Pick one", "choices": ["ab", "abcd", "x y", "yy"], "answer": 0, "subject": "abstract_algebra"},
    {
        "question": "Which is a colour?",
        "choices": ["red", "table", "seven", "run fast"],
        "answer": 0,
        "subject": "miscellaneous",
    },
]
HARNESS_MMLU = dict(
    output_type="multiple_choice",
    test_split="test",
    doc_to_target="answer",
    doc_to_text="{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}\nD. {{choices[3]}}\nAnswer:",
    doc_to_choice=["A", "B", "C", "D"],
    metric_list=[{"metric": "acc"}, {"metric": "acc_norm"}],
)


def _harness_task(path, dev=None, **config):
    from lm_eval.api.task import ConfigurableTask

    files = {"test": str(path), **({"dev": str(dev)} if dev else {})}
    return ConfigurableTask(
        config={
            "task": "parity",
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": files},
            **HARNESS_MMLU,
            **config,
        }
    )


def _preamble(subject):
    return f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"


@pytest.fixture()
def rows_file(tmp_path):
    path = tmp_path / "mmlu.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return path


@pytest.mark.parametrize("index", range(len(ROWS)))
def test_mmlu_prompt_and_continuations_match_the_harness(tiny_model, rows_file, index):
    _, tokenizer = tiny_model
    subject = ROWS[index]["subject"].replace("_", " ")
    harness = _harness_task(
        rows_file, description=f"The following are multiple choice questions (with answers) about {subject}.\n\n"
    )
    doc = harness.test_docs()[index]
    expected = [request.arguments for request in harness.construct_requests(doc, harness.fewshot_context(doc, 0))]
    backend = ScriptedBackend(tokenizer, is_chat=False)
    task = resolve_task("mmlu", [], data=str(rows_file))
    run_task(task, backend)
    ours = [
        (backend._text(r.context).removeprefix(tokenizer.bos_token), backend._text(r.continuation))
        for r in backend.scored[4 * index : 4 * index + 4]
    ]
    assert ours == expected


def test_acc_and_acc_norm_match_the_harness_on_random_loglikelihoods(tiny_model, rows_file):
    _, tokenizer = tiny_model
    harness = _harness_task(rows_file, doc_to_choice="{{choices}}", doc_to_text="{{question}}")
    rng = random.Random(0)
    for trial in range(20):
        logprobs = {(row["question"], choice): -rng.uniform(0.5, 12) for row in ROWS for choice in row["choices"]}
        backend = ScriptedBackend(
            tokenizer,
            is_chat=False,
            score=lambda ctx, cont, logprobs=logprobs: logprobs[
                next((q, c) for q, c in logprobs if q.strip() in ctx and " " + c == cont)
            ],
        )
        samples = run_task(resolve_task("multiple_choice", [], data=str(rows_file)), backend).samples
        for doc, row, sample in zip(harness.test_docs(), ROWS, samples):
            results = [(logprobs[(row["question"], choice)], False) for choice in row["choices"]]
            expected = harness.process_results(doc, results)
            assert {k: sample.scores[k] for k in ("acc", "acc_norm")} == expected, trial


def test_mmlu_few_shot_prompt_matches_the_harness_first_n_from_the_subjects_dev_split(tiny_model, rows_file, tmp_path):
    """The harness runs one task per subject with fewshot_split: dev and the first_n sampler; ours
    reads one dev file of every subject (interleaved here) and takes the first of the same subject."""
    _, tokenizer = tiny_model
    dev_rows = [
        {
            "question": f"{row['subject']} dev {i}?",
            "choices": ["p", "q q", "r", "s"],
            "answer": (i + k) % 4,
            "subject": row["subject"],
        }
        for i in range(4)
        for k, row in enumerate(ROWS)
    ]
    dev = tmp_path / "dev.jsonl"
    dev.write_text("".join(json.dumps(row) + "\n" for row in dev_rows))
    backend = ScriptedBackend(tokenizer, is_chat=False)
    run_task(resolve_task("mmlu", ["few_shot=3", f"few_shot_data={dev}"], data=str(rows_file)), backend)
    for index, row in enumerate(ROWS):
        subject_dev = tmp_path / f"dev_{index}.jsonl"
        subject_dev.write_text("".join(json.dumps(r) + "\n" for r in dev_rows if r["subject"] == row["subject"]))
        harness = _harness_task(
            rows_file,
            dev=subject_dev,
            fewshot_split="dev",
            fewshot_config={"sampler": "first_n"},
            description=_preamble(row["subject"]),
        )
        doc = harness.test_docs()[index]
        expected = [request.arguments for request in harness.construct_requests(doc, harness.fewshot_context(doc, 3))]
        ours = [
            (backend._text(r.context).removeprefix(tokenizer.bos_token), backend._text(r.continuation))
            for r in backend.scored[4 * index : 4 * index + 4]
        ]
        assert ours == expected and f"{row['subject']} dev 2?" in ours[0][0]
        assert f"{row['subject']} dev 3?" not in ours[0][0]  # the first three, not a random three
