"""QuIM-RAG (Saha et al. 2024, "Question-to-question Inverted index Matching"): index questions
written for each chunk instead of the chunks themselves, match a user's query against the
questions, and answer from the chunks the matched questions point to. `mode: chunks` is the plain
baseline: the chunks' own embeddings are indexed and matched.

An index directory holds chunks.jsonl (chunk, doc, title, text), questions.jsonl (id, question,
chunk; QuIM only), index.faiss (question or chunk vectors, ids = question or chunk ids) and
index.json (mode, embedding model, counts, how the questions were written), written last.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from posttrain.errors import UserError, row_error

MODES = ("quim", "chunks")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def split_sentences(text: str) -> list[str]:
    return [s for s in (s.strip() for s in _SENTENCE_END.split(text.strip())) if s]


def split_chunks(text: str, max_words: int) -> list[str]:
    """Whole sentences packed greedily up to max_words words (a longer sentence stands alone), so
    a fact stated in one sentence is never cut between chunks."""
    chunks: list[list[str]] = [[]]
    words = 0
    for sentence in split_sentences(text):
        n = len(sentence.split())
        if chunks[-1] and words + n > max_words:
            chunks.append([])
            words = 0
        chunks[-1].append(sentence)
        words += n
    return [" ".join(c) for c in chunks if c]


def read_documents(path: str) -> list[dict]:
    """Rows with a `text` string; `id` (default: the row number), `title` (default empty) and any
    other field (e.g. oracle_questions) kept."""
    from posttrain.data.sources import read_rows

    docs = []
    for number, row in read_rows(path):
        if not isinstance(row.get("text"), str) or not row["text"].strip():
            raise row_error(path, number, "text", "a document needs a non-empty text string")
        docs.append({**row, "id": row.get("id", number), "title": str(row.get("title", ""))})
    if not docs:
        raise UserError(f"{path}: no documents")
    return docs


def make_chunks(docs: list[dict], max_words: int) -> list[dict]:
    return [
        {"chunk": 0, "doc": doc["id"], "title": doc["title"], "text": piece}
        for doc in docs
        for piece in split_chunks(doc["text"], max_words)
    ]


def passage(chunk: dict) -> str:
    """What is embedded (plain mode) and shown to the question writer and the answerer."""
    return f"{chunk['title']}\n{chunk['text']}" if chunk["title"] else chunk["text"]


def build_index(docs_path: str, out: str | Path, mode: str, max_words: int, embedder, writer=None) -> dict:
    """Chunk the documents, write questions per chunk (QuIM, with `writer(chunks, docs)`), embed
    and index; returns index.json's content."""
    from posttrain.data.jobs import write_atomically
    from posttrain.retrieval.index import VectorIndex

    if mode not in MODES:
        raise UserError(f"mode {mode!r}: choose one of {', '.join(MODES)}")
    docs = read_documents(docs_path)
    chunks = make_chunks(docs, max_words)
    for i, chunk in enumerate(chunks):
        chunk["chunk"] = i
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "index.json").unlink(missing_ok=True)  # the directory is complete again only at the end
    index = VectorIndex(embedder.dim)
    meta = {
        "mode": mode,
        "documents": str(docs_path),
        "embedding_model": embedder.name,
        "max_words": max_words,
        "chunks": len(chunks),
    }
    if mode == "chunks":
        index.add(embedder.encode([passage(c) for c in chunks], show_progress=True), range(len(chunks)))
    else:
        per_chunk = writer(chunks, docs, out)
        pairs = [(c, q) for c, qs in enumerate(per_chunk) for q in qs]
        questions = [{"id": i, "question": q, "chunk": c} for i, (c, q) in enumerate(pairs)]
        if not questions:
            raise UserError("the question writer wrote no question for any chunk; nothing to index")
        index.add(embedder.encode([q["question"] for q in questions], show_progress=True), range(len(questions)))
        write_atomically(out / "questions.jsonl", "".join(json.dumps(q) + "\n" for q in questions))
        meta.update(
            questions=len(questions),
            chunks_without_questions=sum(not qs for qs in per_chunk),
            question_writer=writer.describe(),
        )
    write_atomically(out / "chunks.jsonl", "".join(json.dumps(c) + "\n" for c in chunks))
    index.save(out / "index.faiss")
    write_atomically(out / "index.json", json.dumps(meta, indent=2) + "\n")
    return meta


@dataclass
class RagIndex:
    path: Path
    meta: dict
    chunks: list[dict]
    questions: list[dict]
    vectors: object  # VectorIndex

    @classmethod
    def load(cls, path: str | Path) -> RagIndex:
        from posttrain.retrieval.index import VectorIndex

        path = Path(path)
        if not (path / "index.json").is_file():
            raise UserError(f"{path}: not a finished rag index (no index.json); build one with `posttrain rag index`")
        meta = json.loads((path / "index.json").read_text())
        chunks = [json.loads(x) for x in (path / "chunks.jsonl").read_text().splitlines()]
        questions = (
            [json.loads(x) for x in (path / "questions.jsonl").read_text().splitlines()]
            if meta["mode"] == "quim"
            else []
        )
        return cls(path, meta, chunks, questions, VectorIndex.load(path / "index.faiss"))

    @property
    def retrievable(self) -> int:
        return len({q["chunk"] for q in self.questions}) if self.meta["mode"] == "quim" else len(self.chunks)

    def retrieve(self, query_vectors, k: int) -> list[list[tuple[int, float]]]:
        """The k best distinct chunks per query as (chunk id, cosine), best first. QuIM: a chunk's
        score is that of its best-matching question."""
        if k < 1 or k > self.retrievable:
            raise UserError(
                f"k={k}: {self.path} can return {self.retrievable} distinct chunks; choose 1 <= k <= {self.retrievable}"
            )
        if self.meta["mode"] == "chunks":
            scores, ids = self.vectors.search(query_vectors, k)
            return [[(int(i), float(s)) for s, i in zip(srow, irow)] for srow, irow in zip(scores, ids)]
        return [self._distinct_chunks(v[None], k) for v in query_vectors]

    def _distinct_chunks(self, vector, k: int) -> list[tuple[int, float]]:
        depth = min(len(self.vectors), 4 * k)
        while True:
            scores, ids = self.vectors.search(vector, depth)
            found: dict[int, float] = {}
            for s, i in zip(scores[0], ids[0]):
                found.setdefault(self.questions[int(i)]["chunk"], float(s))
            if len(found) >= k or depth == len(self.vectors):
                return list(found.items())[:k]
            depth = min(len(self.vectors), 4 * depth)


def relevant_chunks(qa: dict, chunks: list[dict]) -> set[int]:
    """Chunks that hold the QA pair's evidence sentence (or, without one, its answer), within its
    document when the pair names one."""
    needle = qa.get("evidence") or qa["answer"]
    return {c["chunk"] for c in chunks if needle in c["text"] and ("doc" not in qa or c["doc"] == qa["doc"])}


def recall_at(retrieved: list[list[int]], relevant: list[set[int]], k: int) -> float:
    """Share of queries with at least one relevant chunk among the first k retrieved."""
    return sum(bool(set(r[:k]) & rel) for r, rel in zip(retrieved, relevant)) / len(relevant)
