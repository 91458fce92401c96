"""A known-good model outranks a known-bad one on each generated task. The good model is the tiny
test model fine-tuned to memorise the first evaluation documents' answers (a model whose behaviour
we control, in ~5 s); the bad one is the untrained model. Scripted oracle/wrong backends check the
same ranking through the backend interface."""

import pytest
from transformers import AutoModelForCausalLM

from posttrain.eval import evaluate_tasks
from posttrain.eval.engine import run_tasks
from posttrain.model.load import load_tokenizer
from tests.unit.eval.fakes import (
    MEMORISED_ANSWERS,
    MEMORISED_DOCS,
    ScriptedBackend,
    first_documents,
    train_memorised,
)


@pytest.fixture(scope="module")
def memorised_dir(tiny_dir, tmp_path_factory):
    return train_memorised(tiny_dir, tmp_path_factory.mktemp("memorised"))


def _scores(model_dir):
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    return evaluate_tasks(
        model, load_tokenizer(str(model_dir)), list(MEMORISED_ANSWERS), limit=MEMORISED_DOCS, batch_size=8
    )


def test_memorised_model_outranks_untrained_model(memorised_dir, tiny_dir):
    good, bad = _scores(memorised_dir), _scores(tiny_dir)
    assert set(good) == {"arithmetic/exact_match", "countdown/countdown"}
    for key in good:
        assert good[key] >= 0.75 > 0.25 >= bad[key], (key, good, bad)


def test_oracle_backend_outranks_wrong_backend(tiny_model):
    _, tokenizer = tiny_model
    docs = {doc["prompt"]: (name, doc) for name in MEMORISED_ANSWERS for doc in first_documents(name)}

    def oracle(prompt):
        name, doc = next(v for q, v in docs.items() if q in prompt)
        return MEMORISED_ANSWERS[name](doc)

    def wrong(prompt):
        name, doc = next(v for q, v in docs.items() if q in prompt)
        return "The answer is -1." if name == "arithmetic" else " + ".join(map(str, doc["numbers"])) + " + 1000"

    good = run_tasks(ScriptedBackend(tokenizer, answer=oracle), list(MEMORISED_ANSWERS), limit=MEMORISED_DOCS)
    bad = run_tasks(ScriptedBackend(tokenizer, answer=wrong), list(MEMORISED_ANSWERS), limit=MEMORISED_DOCS)
    assert [r.values() for r in good] == [{"exact_match": 1.0}, {"countdown": 1.0}]
    assert [r.values() for r in bad] == [{"exact_match": 0.0}, {"countdown": 0.0}]
