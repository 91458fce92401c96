"""Sentence embeddings and vector search (embed.py, index.py), shared by embedding dedup
(curation/embed_dedup.py) and QuIM-RAG (retrieval/rag.py)."""
