"""One run per output directory: an exclusive flock on DIR/.lock, held until the process exits.

flock locks belong to the open file, so the kernel releases them when the process dies in any way
(kill -9 included): there is never a stale lock to clean up. The file holds the holder's PID so a
refused run can name it. Within one process the lock is re-entrant (a script or test may run
several stages on one directory in turn); it is released when the process exits.
"""

from __future__ import annotations

import os
from pathlib import Path

from posttrain.checkpoint.file_lock import hold_lock
from posttrain.errors import UserError

LOCK_FILE = ".lock"


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
    holder = hold_lock(out_dir / LOCK_FILE, "the output directory")
    if holder is not None:
        raise UserError(
            f"{out_dir} is in use by another run (PID {holder}); wait for it to end or choose another --output-dir"
        )
