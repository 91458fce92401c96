"""Shared fixtures: the tiny test model is built once per session through the same code path as
the default model (posttrain.model.tiny.build_tiny), then loaded with from_pretrained like any model."""

import os
import tempfile

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Built-in models ('tiny') and tokenisation caches of the tests go to a fresh directory.
os.environ.setdefault("POSTTRAIN_CACHE", tempfile.mkdtemp(prefix="posttrain-test-cache-"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Under pytest-xdist (`make test`: one worker per core) each worker, and every process it starts,
# uses one torch thread: a thread pool per worker sized to all the cores oversubscribes them.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A saved Hugging Face model directory: Llama architecture (preset 'test') plus its BPE tokenizer."""
    from posttrain.model.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny") / "model", preset="test", seed=0)


@pytest.fixture(scope="session")
def tiny_default_dir(tmp_path_factory):
    """The default tiny model (the quickstart's), for tests that must show learning."""
    from posttrain.model.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny-default") / "model", preset="default", seed=0)


@pytest.fixture(scope="module", params=["llama3", "tiny"])
def chat_tokenizer(request):
    """The real Llama-3 tokenizer (quicktok, offline) and the tiny model's: chat-template tests run on both."""
    if request.param == "llama3":
        pytest.importorskip("quicktok")
        from posttrain.model.llama3_tokenizer import llama3_tokenizer

        return llama3_tokenizer()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(request.getfixturevalue("tiny_dir"))


@pytest.fixture(scope="session")
def tiny_model(tiny_dir):
    """(model, tokenizer) of the untrained tiny test model, loaded once."""
    from posttrain.model.inference import load_model_and_tokenizer

    return load_model_and_tokenizer(str(tiny_dir))


@pytest.fixture()
def tiny_backend(tiny_model):
    from posttrain.generation.backend import HFBackend

    model, tokenizer = tiny_model
    return HFBackend(model, tokenizer, batch_size=4, show_progress=False)


def pytest_collection_modifyitems(config, items):
    """The slow learning tests first (a stable sort): under pytest-xdist the longest tests then run
    side by side at the start instead of one worker finishing them alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
