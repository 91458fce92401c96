"""torchrun for `--num-processes`, exiting as the training processes do.

`python -m torch.distributed.run` answers a training process that stopped with a user error (exit
2, its one line already printed by the main process) with its own Python traceback
(ChildFailedError), a failure summary and exit status 1. This runs the same launcher and exits
with the status of the process that failed first instead, adding nothing to stderr.
"""

from __future__ import annotations

import logging
import signal
import sys


def main(argv: list[str]) -> int:
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    _quiet_launcher()
    try:
        run(parse_args(argv))
    except ChildFailedError as err:
        rank, failure = err.get_first_failure()
        if failure.exitcode >= 0:
            return failure.exitcode
        killer = signal.Signals(-failure.exitcode)  # killed by a signal (e.g. out of memory)
        print(f"posttrain: training process {rank} was killed by {killer.name}", file=sys.stderr)
        return 128 + killer.value
    except SignalException as err:  # SIGTERM/SIGINT passed on to the training processes
        return 128 + int(err.sigval)
    return 0


def _quiet_launcher() -> None:
    """Errors only from the launcher's own loggers: its "closing signal SIGTERM" and "failed
    (exitcode: 2)" lines would follow the one-line error the main process printed."""
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main(sys.argv[1:]))
