"""SIGTERM (what a cluster scheduler sends before preemption) and SIGINT (Ctrl-C) during training:
finish the current step, save a checkpoint, and exit with the signal's status.

The handler only records the signal; the loop asks `requested()` at the end of each step. In a
single process a second SIGINT restores Python's default (KeyboardInterrupt), so Ctrl-C twice
stops at once.
With several processes every rank receives the signal (torchrun forwards it) but maybe at
different steps, so the ranks agree through one small all-reduce per step.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

import torch

HANDLED = (signal.SIGTERM, signal.SIGINT)


class StopRequests:
    def __init__(self, reduce_sum: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.signum = 0
        self.reduce_sum = reduce_sum  # across processes; None with one process
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():  # signal.signal's requirement
            for signum in HANDLED:
                self._previous[signum] = signal.signal(signum, self._record)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _record(self, signum: int, frame) -> None:
        self.signum = self.signum or signum
        if signum == signal.SIGINT and self.reduce_sum is None:
            # With several processes a terminal's Ctrl-C reaches each one twice (directly and
            # through torchrun), so only a single process stops at once on a second one.
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def requested(self) -> int:
        """The signal to stop on (0: none), the same on every process."""
        if self.reduce_sum is None:
            return self.signum
        seen = int(self.reduce_sum(torch.tensor(float(self.signum > 0))))  # every rank takes part
        return (self.signum or signal.SIGTERM) if seen else 0

    @staticmethod
    def name(signum: int) -> str:
        return signal.Signals(signum).name
