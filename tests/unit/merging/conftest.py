"""Three related tiny models for merge tests: a base and two fine-tune-like variants of it
(the base plus independent Gaussian task vectors), written as ordinary model directories."""

import pytest
import torch

from posttrain.checkpoint.weights import read_state_dict, write_model_dir


@pytest.fixture(scope="module")
def family(tiny_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("family")
    base = read_state_dict(tiny_dir)
    out = {"base": tiny_dir}
    for i, name in enumerate(["a", "b"]):
        gen = torch.Generator().manual_seed(i)
        variant = {k: v + 0.02 * torch.randn(v.shape, generator=gen) for k, v in base.items()}
        out[name] = write_model_dir(variant, tiny_dir, root / name)
    return out
