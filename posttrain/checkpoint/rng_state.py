"""Random-number-generator state for exact resume.

Data shuffling, dropout and sampling all draw from these generators, so a resumed run only repeats
the uninterrupted one if they continue from where the checkpoint left them. The captured state uses
only tensors, lists, ints, floats, strings and dicts, so `torch.load(weights_only=True)` reads it back
without unpickling arbitrary objects.

Each process has its own generators; the checkpoint holds those of the process that saved it (the
main process), which is what a single-process run needs.
"""

import random
from typing import Any

import numpy as np
import torch


def capture_rng_state() -> dict[str, Any]:
    """The state of python `random`, numpy's global generator, torch CPU and (if present) the current CUDA device."""
    state: dict[str, Any] = {
        "python": _python_state(),
        "numpy": _numpy_state(),
        "torch_cpu": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["torch_cuda"] = torch.cuda.get_rng_state()  # this process's device; other ranks own theirs
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put every generator back to `state` (as made by capture_rng_state).

    The CUDA state goes to the current device, and is skipped where CUDA is unavailable, so a
    checkpoint from a GPU machine still resumes (not bit-exactly) on a CPU one.
    """
    _restore_python_state(state["python"])
    _restore_numpy_state(state["numpy"])
    torch.set_rng_state(state["torch_cpu"])
    if "torch_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["torch_cuda"])


def _python_state() -> dict[str, Any]:
    """random.getstate() is (version, tuple of 625 ints, gauss_next); tuples become lists."""
    version, internal, gauss_next = random.getstate()
    return {"version": version, "internal": list(internal), "gauss_next": gauss_next}


def _restore_python_state(saved: dict[str, Any]) -> None:
    random.setstate((saved["version"], tuple(saved["internal"]), saved["gauss_next"]))


def _numpy_state() -> dict[str, Any]:
    """np.random.get_state() holds a uint32 array; it is stored as a list of python ints."""
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    return {
        "name": str(name),
        "keys": [int(key) for key in keys],
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached_gaussian),
    }


def _restore_numpy_state(saved: dict[str, Any]) -> None:
    keys = np.array(saved["keys"], dtype=np.uint32)
    np.random.set_state((saved["name"], keys, saved["pos"], saved["has_gauss"], saved["cached_gaussian"]))
