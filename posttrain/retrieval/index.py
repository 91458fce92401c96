"""A faiss inner-product index over unit vectors (so scores are cosine similarities), each vector
carrying an integer payload id (the row or chunk it stands for).

Exact search (IndexFlatIP): 1.5 KB per 384-dimensional vector, 10 million vectors in ~15 GB; the
file is written with faiss' own format (no pickle), atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

from posttrain.errors import UserError


def _faiss():
    import logging

    logging.getLogger("faiss").setLevel(logging.WARNING)  # its loader logs each CPU variant it tries
    try:
        import faiss
    except ImportError:
        raise UserError("faiss is not installed (pip install 'posttrain[curate]')") from None
    return faiss


class VectorIndex:
    def __init__(self, dim: int):
        faiss = _faiss()
        self.dim = dim
        self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    def __len__(self) -> int:
        return self.index.ntotal

    def add(self, vectors, ids) -> None:
        import numpy as np

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"expected vectors of shape [N, {self.dim}], got {vectors.shape}")
        self.index.add_with_ids(vectors, np.asarray(ids, dtype=np.int64))

    def search(self, queries, k: int):
        """(scores [Q, k], ids [Q, k]), best first."""
        import numpy as np

        if k < 1 or k > len(self):
            raise UserError(f"k={k}: the index holds {len(self)} vectors; choose 1 <= k <= {len(self)}")
        return self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
        _faiss().write_index(self.index, str(tmp))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path) -> VectorIndex:
        faiss = _faiss()
        if not Path(path).is_file():
            raise UserError(f"{path}: index file not found")
        try:
            index = faiss.read_index(str(path))
        except RuntimeError:
            raise UserError(f"{path}: not a faiss index file") from None
        self = cls.__new__(cls)
        self.dim, self.index = index.d, index
        return self
