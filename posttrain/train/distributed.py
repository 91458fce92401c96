"""Scale through accelerate: DDP by default when several processes run, FSDP2 when the recipe
asks (`train.distributed: fsdp`). `--num-processes N` relaunches the command under torchrun;
`accelerate launch -m posttrain ...` works the same way.

Checkpoints hold full (unsharded) weights and optimizer state keyed by parameter name, gathered
with torch.distributed.checkpoint's state-dict helpers: a run saved by 2 processes resumes in 1
and vice versa.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from typing import Any

import torch
from accelerate import Accelerator
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)

from posttrain.config.recipe import Recipe


def make_accelerator(recipe: Recipe) -> Accelerator:
    plugin = None
    if recipe.train.distributed == "fsdp":
        from accelerate.utils import FullyShardedDataParallelPlugin

        # FSDP2 (fully_shard) on every decoder layer; full state dicts for saving.
        plugin = FullyShardedDataParallelPlugin(
            fsdp_version=2,
            auto_wrap_policy="transformer_based_wrap",
            reshard_after_forward=True,
            state_dict_type="FULL_STATE_DICT",
            cpu_ram_efficient_loading=False,
        )
    # accelerate only sets up multi-process CPU training (gloo) when told it runs on the CPU.
    return Accelerator(
        mixed_precision=recipe.train.mixed_precision, fsdp_plugin=plugin, cpu=not torch.cuda.is_available()
    )


class GatheredOptimizerState:
    """The optimizer's full state, gathered on every process (a collective under FSDP), keyed by
    parameter name so it loads into any sharding. Quacks like an optimizer for save/load."""

    def __init__(self, module: torch.nn.Module, optimizer: torch.optim.Optimizer):
        self.module, self.optimizer = module, getattr(optimizer, "optimizer", optimizer)

    def state_dict(self) -> dict[str, Any]:
        return get_optimizer_state_dict(
            self.module, self.optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        set_optimizer_state_dict(self.module, self.optimizer, state, options=StateDictOptions(full_state_dict=True))


class Frozen:
    """A state dict computed on every process, handed to the main process's writer."""

    def __init__(self, state: dict[str, Any]):
        self.state = state

    def state_dict(self) -> dict[str, Any]:
        return self.state


def model_state_dict(accelerator: Accelerator, policy: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Full weights of the wrapped HF model (policy.model), gathered on every process."""
    return policy_state_dicts(accelerator, policy)[0]


def policy_state_dicts(
    accelerator: Accelerator, policy: torch.nn.Module
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(the HF model's full weights, the weights of the other submodules trained beside it, e.g.
    PPO's critic, under their own names), gathered on every process (a collective under FSDP)."""
    state = accelerator.get_state_dict(policy)
    if not state:
        return state, {}
    extra = tuple(f"{name}." for name, _ in accelerator.unwrap_model(policy).named_children() if name != "model")
    model = {k.removeprefix("model."): v for k, v in state.items() if not k.startswith(extra)}
    return model, {k: v for k, v in state.items() if k.startswith(extra)}


def relaunch(num_processes: int, argv: list[str]) -> int:
    """Run `posttrain <argv>` in num_processes processes under torchrun (DDP on gloo on CPU)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "posttrain.train.launch",
        f"--nproc-per-node={num_processes}",
        "--master-addr=127.0.0.1",
        f"--master-port={port}",
        "-m",
        "posttrain",
        *argv,
    ]
    threads = os.environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // num_processes)))
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": threads})
    # SIGTERM/SIGINT sent to this process go on to torchrun, which passes them to the training
    # processes (they checkpoint and stop); dying here at once would leave them training orphaned.
    forwarded: list[int] = []

    def forward(signum: int, frame) -> None:
        forwarded.append(signum)
        proc.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        status = proc.wait()
        return 128 + forwarded[0] if status and forwarded else status  # as a single process exits
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def in_distributed_launch() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1
