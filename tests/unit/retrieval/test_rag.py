"""QuIM-RAG: chunking, distinct-chunk retrieval through questions and recall@k by hand; the whole
index -> eval path against a scripted OpenAI-compatible server that writes questions and answers;
bad input as one line."""

import json

import numpy as np
import pytest

from posttrain.cli import main
from posttrain.retrieval.corpus import make_corpus, write_corpus
from posttrain.retrieval.index import VectorIndex
from posttrain.retrieval.rag import RagIndex, recall_at, relevant_chunks, split_chunks
from posttrain.retrieval.rag_models import SentenceWriter, parse_questions
from tests.unit.eval.fakes import json_server


def test_chunks_are_whole_sentences_up_to_the_word_budget():
    text = "One two three. Four five! Six seven eight nine ten eleven? Twelve."
    assert split_chunks(text, 5) == ["One two three. Four five!", "Six seven eight nine ten eleven?", "Twelve."]
    assert split_chunks(text, 100) == [text]
    chunks = [
        {"chunk": 0, "doc": 0, "title": "T", "text": "One two. Three?"},
        {"chunk": 1, "doc": 0, "title": "", "text": "Four."},
    ]
    assert SentenceWriter()(chunks, [], None) == [["T: One two.", "T: Three?"], ["Four."]]


def test_quim_returns_distinct_chunks_scored_by_their_best_question(tmp_path):
    vectors = VectorIndex(2)
    angles = np.radians([0, 10, 20, 90])  # questions 0, 1 -> chunk 0; 2 -> chunk 1; 3 -> chunk 2
    vectors.add(np.stack([np.cos(angles), np.sin(angles)], 1), [0, 1, 2, 3])
    questions = [{"id": i, "question": "q", "chunk": c} for i, c in enumerate([0, 0, 1, 2])]
    index = RagIndex(tmp_path, {"mode": "quim"}, [{"chunk": c} for c in range(3)], questions, vectors)
    query = np.array([[np.cos(np.radians(5)), np.sin(np.radians(5))]], dtype=np.float32)
    hits = index.retrieve(query, 2)[0]
    assert [c for c, _ in hits] == [0, 1]
    assert hits[0][1] == pytest.approx(np.cos(np.radians(5)), abs=1e-6)  # question 0 or 1, both 5 degrees
    assert hits[1][1] == pytest.approx(np.cos(np.radians(15)), abs=1e-6)
    with pytest.raises(Exception, match="k=4"):
        index.retrieve(query, 4)


def test_recall_and_relevance_by_hand():
    chunks = [{"chunk": 0, "doc": 0, "text": "A is 1. B is 2."}, {"chunk": 1, "doc": 1, "text": "A is 1."}]
    assert relevant_chunks({"answer": "1", "evidence": "A is 1.", "doc": 1}, chunks) == {1}
    assert relevant_chunks({"answer": "2"}, chunks) == {0}
    assert recall_at([[0, 1], [1, 0]], [{1}, {1}], 1) == 0.5
    assert recall_at([[0, 1], [1, 0]], [{1}, {1}], 2) == 1.0


def test_question_parsing_drops_numbering_and_non_questions():
    text = "1. Who is the mayor of X?\n- Where is X?\nHere are questions:\n2) Who is the mayor of X?\nQ3: Why?"
    assert parse_questions(text, 5) == ["Who is the mayor of X?", "Where is X?", "Why?"]
    assert parse_questions(text, 1) == ["Who is the mayor of X?"]


def test_corpus_is_deterministic_and_each_answer_is_in_its_evidence(tmp_path):
    docs, qa = make_corpus(5, seed=3)
    assert (docs, qa) == make_corpus(5, seed=3) and docs != make_corpus(5, seed=4)[0]
    assert len(qa) == 5 * 8
    for pair in qa:
        assert pair["evidence"] in docs[pair["doc"]]["text"] and pair["answer"] in pair["evidence"]


def _scripted_model(docs, qa, seen):
    """Writes each chunk's stored questions (numbered, with chatter) and answers a question with its
    reference when the evidence sentence is in the given context, else 'unknown'."""
    by_question = {q["question"]: q for q in qa}

    def reply(body, headers):
        prompt = body["messages"][0]["content"]
        seen.append(prompt)
        if prompt.startswith("Here is a passage"):
            title = prompt.split('titled "', 1)[1].split('"', 1)[0]
            lines = [
                q["question"]
                for d in docs
                if d["title"] == title
                for q in d["oracle_questions"]
                if q["sentence"] in prompt
            ]
            text = "Sure, here they are:\n" + "\n".join(f"{i + 1}. {q}" for i, q in enumerate(lines))
        else:
            pair = by_question[prompt.rsplit("Question: ", 1)[1]]
            context = prompt.split("\n\n", 1)[1].rsplit("\n\nQuestion: ", 1)[0]
            blocks = [b.split("] ", 1)[1] for b in context.split("\n\n")]  # "[i] Title: text"
            title = docs[pair["doc"]]["title"]
            found = any(b.startswith(f"{title}: ") and pair["evidence"] in b for b in blocks)
            text = pair["answer"] if found else "unknown"
        return 200, {
            "choices": [{"message": {"content": text}, "finish_reason": "stop"}],
            "usage": {"completion_tokens": 3},
        }

    return reply


def test_index_and_eval_through_a_scripted_server(tmp_path, capsys):
    paths = write_corpus(tmp_path / "towns", n_docs=6, seed=1)
    docs = [json.loads(x) for x in paths["docs"].read_text().splitlines()]
    qa = [json.loads(x) for x in paths["qa"].read_text().splitlines()]
    seen: list[str] = []
    with json_server(_scripted_model(docs, qa, seen)) as url:
        backend = ["--model", "scripted", "--backend", "openai", "--base-url", url, "--max-retries", "0"]
        assert (
            main(
                [
                    "rag",
                    "index",
                    "--docs",
                    str(paths["docs"]),
                    "--out",
                    str(tmp_path / "quim"),
                    "--questions-per-chunk",
                    "8",
                    *backend,
                ]
            )
            == 0
        )
        assert (
            main(["rag", "index", "--docs", str(paths["docs"]), "--out", str(tmp_path / "chunks"), "--mode", "chunks"])
            == 0
        )
        n_writes = len(seen)
        assert (
            main(
                [
                    "rag",
                    "eval",
                    str(tmp_path / "quim"),
                    str(tmp_path / "chunks"),
                    "--qa",
                    str(paths["qa"]),
                    "--k",
                    "1,3",
                    "--context-k",
                    "1",
                    "--out",
                    str(tmp_path / "r.json"),
                    *backend,
                ]
            )
            == 0
        )
    meta = json.loads((tmp_path / "quim" / "index.json").read_text())
    chunks = [json.loads(x) for x in (tmp_path / "quim" / "chunks.jsonl").read_text().splitlines()]
    assert n_writes == len(chunks) and meta["questions"] == len(qa)  # every fact's question, parsed
    assert meta["question_writer"]["kind"] == "model"
    results = json.loads((tmp_path / "r.json").read_text())["indexes"]
    quim, plain = results[str(tmp_path / "quim")], results[str(tmp_path / "chunks")]
    assert quim["questions_scored"] == plain["questions_scored"] == len(qa)
    # the scripted reader answers exactly when the evidence is in the one chunk it is given
    assert quim["exact_match"] == pytest.approx(quim["recall@1"])
    assert plain["exact_match"] == pytest.approx(plain["recall@1"])
    assert quim["recall@1"] > plain["recall@1"] and quim["recall@1"] > 0.9
    assert "recall@1" in capsys.readouterr().out
    answer_prompt = seen[-1]
    assert answer_prompt.startswith("Answer the question using only") and "\n\n[1] " in answer_prompt


def test_bad_input_is_one_line(tmp_path, capsys):
    paths = write_corpus(tmp_path / "towns", n_docs=2)
    assert main(["rag", "index", "--docs", str(paths["docs"]), "--out", str(tmp_path / "c"), "--mode", "chunks"]) == 0
    capsys.readouterr()
    bad_qa = tmp_path / "bad.jsonl"
    bad_qa.write_text(json.dumps({"question": "Where?"}) + "\n")
    cases = [
        (["rag", "eval", str(tmp_path / "c"), "--qa", str(paths["qa"]), "--k", "1,99"], "k=99"),
        (["rag", "eval", str(tmp_path / "c"), "--qa", str(bad_qa)], "bad.jsonl: row 1: field 'answer'"),
        (["rag", "eval", str(tmp_path / "none"), "--qa", str(paths["qa"])], "not a finished rag index"),
        (["rag", "ask", str(tmp_path / "c"), "--question", "x", "--embedding-model", str(tmp_path)], "embedding model"),
        (["rag", "index", "--docs", str(paths["docs"]), "--out", str(tmp_path / "q")], "--oracle-questions"),
        (
            ["rag", "index", "--docs", str(paths["qa"]), "--out", str(tmp_path / "q"), "--mode", "chunks"],
            "qa.jsonl: row 1: field 'text'",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("posttrain: error:") and message in err and "\n" not in err, err
