"""`posttrain rag eval`: recall@k of one or more indexes on QA pairs, and with an answering model
the exact match of its answers from each index's top chunks.

recall@k: the share of questions with at least one relevant chunk (one holding the pair's
evidence sentence, or its answer, within its document) among the k retrieved. Pairs whose
evidence is in no chunk are counted and left out. Exact match: rewards/extract.py's canonical_text
of the answer and of the reference are equal (case, surrounding quotes, final period).
"""

from __future__ import annotations

import json

from posttrain.errors import UserError, row_error


def read_qa(path: str) -> list[dict]:
    from posttrain.data.sources import read_rows

    rows = []
    for number, row in read_rows(path):
        for field in ("question", "answer"):
            if (
                not isinstance(row.get(field), (str, int, float))
                or isinstance(row.get(field), bool)
                or not str(row[field]).strip()
            ):
                raise row_error(path, number, field, "a QA row needs a non-empty question and answer")
        rows.append({**row, "answer": str(row["answer"])})
    if not rows:
        raise UserError(f"{path}: no QA rows")
    return rows


def parse_ks(text: str) -> list[int]:
    try:
        ks = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        ks = []
    if not ks or ks[0] < 1:
        raise UserError(f"--k {text!r}: expected comma-separated integers >= 1, e.g. 1,3,5")
    return ks


def evaluate_index(path: str, qa: list[dict], ks: list[int], context_k: int, embedding_model, answerer=None) -> dict:
    """{mode, questions_scored, no_relevant_chunk, recall@k..., exact_match?} for one index."""
    from posttrain.retrieval.embed import Embedder
    from posttrain.retrieval.rag import RagIndex, recall_at, relevant_chunks
    from posttrain.retrieval.rag_models import answer_prompts
    from posttrain.rewards.extract import canonical_text

    index = RagIndex.load(path)
    embedder = Embedder(embedding_model or index.meta["embedding_model"])
    hits = index.retrieve(embedder.encode([q["question"] for q in qa]), max(ks + ([context_k] if answerer else [])))
    retrieved = [[c for c, _ in h] for h in hits]
    relevant = [relevant_chunks(q, index.chunks) for q in qa]
    scored = [i for i, rel in enumerate(relevant) if rel]
    if not scored:
        raise UserError(f"{path}: no QA pair's evidence is in any chunk of this index (another corpus?)")
    result = {
        "mode": index.meta["mode"],
        "question_writer": index.meta.get("question_writer", {}).get("kind"),
        "questions_scored": len(scored),
        "no_relevant_chunk": len(qa) - len(scored),
    }
    for k in ks:
        result[f"recall@{k}"] = recall_at([retrieved[i] for i in scored], [relevant[i] for i in scored], k)
    if answerer is not None:
        contexts = [[index.chunks[c] for c in r[:context_k]] for r in retrieved]
        answers = answerer(answer_prompts([q["question"] for q in qa], contexts))
        result["exact_match"] = sum(
            a is not None and canonical_text(a) == canonical_text(q["answer"]) for a, q in zip(answers, qa)
        ) / len(qa)
        result["answer_failures"] = sum(a is None for a in answers)
        result["answers"] = [
            {"question": q["question"], "answer": q["answer"], "prediction": a} for q, a in zip(qa, answers)
        ]
    return result


def evaluate(args, backend=None) -> int:
    from pathlib import Path

    from posttrain.data.jobs import write_atomically
    from posttrain.retrieval.rag_models import answer

    ks = parse_ks(args.k)
    if args.context_k < 1:
        raise UserError(f"--context-k must be >= 1, got {args.context_k}")
    qa = read_qa(args.qa)

    def answerer(prompts):
        return answer(backend, args.backend, args.model, prompts, args.batch_size)

    results = {
        path: evaluate_index(
            path, qa, ks, args.context_k, args.embedding_model, answerer if backend is not None else None
        )
        for path in args.indexes
    }
    for path, r in results.items():
        cells = [f"recall@{k} {r[f'recall@{k}']:.3f}" for k in ks]
        if "exact_match" in r:
            cells.append(f"exact match {r['exact_match']:.3f}")
        print(f"{path} ({r['mode']}): " + ", ".join(cells) + f" over {r['questions_scored']} questions")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        report = {"qa": args.qa, "k": ks, "context_k": args.context_k, "answerer": args.model, "indexes": results}
        write_atomically(Path(args.out), json.dumps(report, indent=2) + "\n")
    return 0
