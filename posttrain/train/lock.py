"""One run per output directory: an exclusive flock on DIR/.lock, held until the process exits.

flock locks belong to the open file, so the kernel releases them when the process dies in any way
(kill -9 included): there is never a stale lock to clean up. The file holds the holder's PID so a
refused run can name it. Within one process the lock is re-entrant (a script or test may run
several stages on one directory in turn); it is released when the process exits.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from posttrain.errors import UserError

LOCK_FILE = ".lock"
_held: dict[str, int] = {}  # real path of a lock file -> its open descriptor (kept for life)


def make_output_dir(out_dir: Path) -> None:
    """Create the run directory, or say in one line why it cannot be: a file in the way (the
    directory itself or a parent), no permission, a read-only or virtual file system."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--output-dir {out_dir}: exists and is not a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except NotADirectoryError:
        raise UserError(f"--output-dir {out_dir}: a parent path is a file, not a directory") from None
    except OSError as err:
        raise UserError(f"--output-dir {out_dir}: cannot create it: {err.strerror or err}") from None
    if not os.access(out_dir, os.W_OK):
        raise UserError(f"--output-dir {out_dir}: not writable")


def lock_output_dir(out_dir: Path) -> None:
    """Create out_dir if needed and take its lock, or raise UserError naming the holder's PID."""
    make_output_dir(out_dir)
    path = out_dir / LOCK_FILE
    try:
        key = os.path.realpath(path)
        if key in _held:
            return
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        raise UserError(f"{err.filename or out_dir}: cannot use as the output directory: "
                        f"{err.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        if err.errno not in (errno.EWOULDBLOCK, errno.EACCES):
            raise UserError(f"{path}: cannot lock: {err.strerror}") from None
        raise UserError(f"{out_dir} is in use by another run (PID {holder}); wait for it to end "
                        "or choose another --output-dir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[key] = fd
