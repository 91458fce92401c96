"""Verifier calls bounded in time: each runs in a worker process and one that has not returned
after `timeout_s` is scored TIMEOUT_SCORE and counted, its worker killed and a fresh one started.

Why a process: a verifier stuck in C code (big-integer arithmetic on a number a model made up, a
regular expression gone exponential) holds the interpreter lock, so neither a thread nor a signal
can stop it; only killing the process it runs in can. The worker is forked once and reused, so a
call costs one round trip ("fork": the worker already holds every module the verifier needs, and
"spawn" would re-run the `python -m posttrain` main module in it; the worker runs only the
verifier's Python code, never torch or CUDA). A function that cannot be pickled (a lambda, a closure holding a model) cannot be sent to
a worker and runs in this process, unbounded.
"""

from __future__ import annotations

import logging
import multiprocessing
import pickle
from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)

TIMEOUT_SCORE = 0.0
DEFAULT_TIMEOUT_S = 10.0


def _call(fn: Callable, sample: dict, completion: str) -> float:
    return float(fn(sample, completion))


def can_run_in_worker(fn: Callable) -> bool:
    try:
        pickle.dumps(fn)
    except Exception:  # pickling raises PicklingError, AttributeError or TypeError by object
        return False
    return True


class BoundedCalls:
    """fn(sample, completion) per row in a worker process, each within timeout_s."""

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.timeout_s = timeout_s
        self.timeouts = 0  # calls scored TIMEOUT_SCORE because they ran out of time, ever
        self._pool = None

    def map(self, fn: Callable, samples: Sequence[dict], completions: Sequence[str], label: str = "") -> list[float]:
        scores = []
        for sample, completion in zip(samples, completions):
            pending = self._worker().apply_async(_call, (fn, sample, completion))
            try:
                scores.append(pending.get(self.timeout_s))
            except multiprocessing.TimeoutError:
                self._restart()
                self.timeouts += 1
                log.warning(
                    "verifier timeout: reward '%s' did not return within %gs; the completion "
                    "is scored %g (%d verifier timeouts so far)",
                    label,
                    self.timeout_s,
                    TIMEOUT_SCORE,
                    self.timeouts,
                )
                scores.append(TIMEOUT_SCORE)
        return scores

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def _worker(self):
        if self._pool is None:
            self._pool = multiprocessing.get_context("fork").Pool(1)
        return self._pool

    def _restart(self) -> None:
        self.close()  # the stuck call dies with its worker

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: the pool's machinery may be gone already
            pass
