"""RNG capture/restore: a restored run draws exactly the numbers the original drew."""

import random

import numpy as np
import torch

from posttrain.checkpoint.rng_state import capture_rng_state, restore_rng_state


def draw() -> tuple:
    return (
        [random.random() for _ in range(3)],
        random.gauss(0.0, 1.0),  # leaves gauss_next cached: part of the state too
        np.random.rand(3).tolist(),
        np.random.randn(1).tolist(),
        torch.rand(3).tolist(),
    )


def test_restore_replays_the_same_draws():
    random.gauss(0.0, 1.0)
    state = capture_rng_state()
    first = draw()
    restore_rng_state(state)
    assert draw() == first


def test_state_survives_torch_save_and_weights_only_load(tmp_path):
    state = capture_rng_state()
    first = draw()
    torch.save(state, tmp_path / "rng.pt")
    draw()  # move every generator on
    restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert draw() == first
