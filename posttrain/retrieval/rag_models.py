"""The model calls of QuIM-RAG: writing questions for each chunk and answering from retrieved
chunks, both through posttrain's one generation path (generation/sample.py's Sampler over any
backend: hf, vllm, openai-compatible HTTP), greedy. The prompts are the project's own wording.

The oracle question writer is no model: it returns the questions a corpus stores for the
sentences of each chunk (`oracle_questions` in `posttrain rag corpus` documents), to measure
retrieval with questions that are always right.
"""

from __future__ import annotations

import re

from posttrain.errors import UserError

QUESTION_PROMPT = (
    'Here is a passage from a document titled "{title}":\n\n{text}\n\n'
    "Write {n} different questions that this passage answers. Each question must make "
    "sense on its own: name the place, person or thing it is about instead of writing "
    "'it' or 'the town'. Write one question per line, with no numbering and nothing else."
)
ANSWER_PROMPT = (
    "Answer the question using only the passages below. Reply with the answer alone, as a "
    "short phrase, not a sentence.\n\n{context}\n\nQuestion: {question}"
)
_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.):]|Q\d*[.:])\s*")


def parse_questions(text: str, n: int) -> list[str]:
    """The first n distinct lines ending in '?', numbering and bullets removed."""
    found: list[str] = []
    for line in text.splitlines():
        question = _BULLET.sub("", line).strip()
        if question.endswith("?") and len(question) > 1 and question not in found:
            found.append(question)
    return found[:n]


class OracleWriter:
    def describe(self) -> dict:
        return {"kind": "oracle", "note": "the corpus's stored question per sentence; no model"}

    def __call__(self, chunks: list[dict], docs: list[dict], out) -> list[list[str]]:
        by_doc = {}
        for doc in docs:
            if not isinstance(doc.get("oracle_questions"), list):
                raise UserError(
                    f"document {doc['id']}: no oracle_questions list (the oracle writer "
                    "needs a corpus from `posttrain rag corpus`; otherwise use --model)"
                )
            by_doc[doc["id"]] = doc["oracle_questions"]
        return [[q["question"] for q in by_doc[c["doc"]] if q["sentence"] in c["text"]] for c in chunks]


class SentenceWriter:
    """No model and no questions: each sentence of a chunk (with the document's title) stands in
    for a question. An ablation: it separates QuIM's finer granularity (one vector per fact)
    from the question phrasing."""

    def describe(self) -> dict:
        return {"kind": "sentences", "note": "each sentence of the chunk, titled; no model"}

    def __call__(self, chunks: list[dict], docs: list[dict], out) -> list[list[str]]:
        from posttrain.retrieval.rag import split_sentences

        return [[f"{c['title']}: {s}" if c["title"] else s for s in split_sentences(c["text"])] for c in chunks]


def _sampler(backend, backend_name: str, model: str, max_new_tokens: int):
    from posttrain.generation.sample import Sampler
    from posttrain.generation.source import SamplingSettings

    settings = SamplingSettings(n=1, temperature=0.0, max_new_tokens=max_new_tokens, logprobs=False)
    return Sampler(backend, backend_name, model, settings)


def _item(row: int, content: str) -> dict:
    return {"row": row, "fields": {}, "messages": [{"role": "user", "content": content}], "reference": None}


class ModelWriter:
    """n questions per chunk from a model, as a resumable job (OUT/questions.raw.jsonl)."""

    def __init__(self, backend, backend_name: str, model: str, n: int, batch_size: int, max_new_tokens: int = 256):
        self.sampler = _sampler(backend, backend_name, model, max_new_tokens)
        self.model, self.n, self.batch_size = model, n, batch_size

    def describe(self) -> dict:
        return {
            "kind": "model",
            "model": self.model,
            "backend": self.sampler.backend_name,
            "questions_per_chunk": self.n,
            "prompt": QUESTION_PROMPT,
        }

    def __call__(self, chunks: list[dict], docs: list[dict], out) -> list[list[str]]:
        import hashlib
        import json
        from pathlib import Path

        from posttrain.data.jobs import JobSpec, run_job

        items = [_item(c["chunk"], QUESTION_PROMPT.format(title=c["title"], text=c["text"], n=self.n)) for c in chunks]
        raw = Path(out) / "questions.raw.jsonl"
        prompts_sha = hashlib.sha256(json.dumps(items).encode()).hexdigest()  # other chunks: other job
        manifest = run_job(
            items,
            self.sampler,
            JobSpec(
                out=raw,
                batch_size=self.batch_size,
                desc="chunks",
                identity={"command": "rag index", **self.describe(), "prompts_sha256": prompts_sha},
            ),
        )
        if manifest["failures"]:
            raise UserError(
                f"{len(manifest['failures'])} chunks got no answer from {self.model} (first: "
                f"{manifest['failures'][0]['error']}); rerun to retry them"
            )
        rows = {r["row"]: r for r in map(json.loads, raw.read_text().splitlines())}
        return [parse_questions(rows[c["chunk"]]["completions"][0]["text"], self.n) for c in chunks]


def answer_prompts(questions: list[str], contexts: list[list[dict]]) -> list[str]:
    def context(chunks):
        return "\n\n".join(
            f"[{i + 1}] {c['title']}: {c['text']}" if c["title"] else f"[{i + 1}] {c['text']}"
            for i, c in enumerate(chunks)
        )

    return [ANSWER_PROMPT.format(context=context(c), question=q) for q, c in zip(questions, contexts)]


def answer(
    backend, backend_name: str, model: str, prompts: list[str], batch_size: int, max_new_tokens: int = 32
) -> list[str | None]:
    """One greedy answer per prompt (None where the request failed after its retries)."""
    from tqdm.auto import tqdm

    sampler = _sampler(backend, backend_name, model, max_new_tokens)
    items = [_item(i, p) for i, p in enumerate(prompts)]
    answers: list[str | None] = [None] * len(items)
    for start in tqdm(range(0, len(items), batch_size), desc="answers", unit="batch"):
        for row in sampler(items[start : start + batch_size], start).rows:
            answers[row["row"]] = row["completions"][0]["text"].strip()
    return answers
