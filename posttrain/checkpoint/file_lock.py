"""An exclusive flock on a file, held until the process exits: one writer per output (training's
run directories, train/lock.py; data jobs' outputs, data/jobs.py).

flock locks belong to the open file, so the kernel releases them when the process dies in any way
(kill -9 included): there is never a stale lock to clean up. The file holds the holder's PID so a
refused writer can name it. Within one process the lock is re-entrant.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from posttrain.errors import UserError

_held: dict[str, int] = {}  # real path of a lock file -> its open descriptor (kept for life)


def hold_lock(path: Path, what: str) -> str | None:
    """Take the lock at `path` (created if needed): None when held now by this process, else the
    PID (text) of the process holding it. `what` names the output in a one-line error."""
    try:
        key = os.path.realpath(path)
        if key in _held:
            return None
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        raise UserError(f"{err.filename or path}: cannot use as {what}: {err.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        if err.errno not in (errno.EWOULDBLOCK, errno.EACCES):
            raise UserError(f"{path}: cannot lock: {err.strerror}") from None
        return holder
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[key] = fd
    return None
