"""A safe --out for commands that write a whole directory (quantize, merge, merge-lora, surgery).

Publishing a directory replaces what was under its name (checkpoint/io.py writes a temp sibling
and renames it into place), so before any work the output is checked:
- it must not be one of the inputs, nor inside one, nor contain one (the rename would delete it);
- an existing non-empty directory is replaced only when it is this command's own earlier output
  (it holds OUTPUT_MARKER naming the command) or the user passed --overwrite.
The marker is written into the temp directory, so it arrives with the output in the same rename.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from posttrain.errors import UserError

OUTPUT_MARKER = ".posttrain-output.json"


def check_output_dir(
    out: str | os.PathLike, command: str, inputs: Iterable[str | os.PathLike], overwrite: bool = False
) -> Path:
    """Raise a one-line UserError when writing `out` could destroy an input or a directory this
    command did not make; returns `out` as a Path."""
    out = Path(out)
    target = out.resolve()
    for source in inputs:
        source = Path(source).resolve()
        if target == source or source in target.parents or target in source.parents:
            raise UserError(
                f"--out {out}: is, is inside or contains the input {source}; "
                "choose an output directory apart from every input"
            )
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite and written_by(out) != command:
        raise UserError(
            f"--out {out}: not empty and not an earlier output of `posttrain {command}`; "
            "choose an empty or new directory, or pass --overwrite to replace it"
        )
    return out


def written_by(directory: Path) -> str | None:
    """The command named by the directory's marker, or None (no marker, or one that does not parse)."""
    try:
        return json.loads((directory / OUTPUT_MARKER).read_text(encoding="utf-8")).get("command")
    except (OSError, ValueError, AttributeError):
        return None


def marking(command: str, write: Callable[[Path], None]) -> Callable[[Path], None]:
    """`write`, followed by the marker that lets a rerun of `command` replace this output."""

    def write_and_mark(tmp_dir: Path) -> None:
        write(tmp_dir)
        (tmp_dir / OUTPUT_MARKER).write_text(json.dumps({"command": command}) + "\n", encoding="utf-8")

    return write_and_mark


def write_output_dir(
    out: str | os.PathLike,
    command: str,
    inputs: Iterable[str | os.PathLike],
    overwrite: bool,
    write: Callable[[Path], None],
) -> Path:
    """check_output_dir, then write(tmp_dir) in a temp sibling renamed into place when complete."""
    from posttrain.checkpoint.io import write_dir_atomically

    out = check_output_dir(out, command, inputs, overwrite)
    return write_dir_atomically(out, marking(command, write))


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_file_name(name: str) -> str:
    """A user-given name (a task, a source) as one path component that stays where it is put:
    every character but letters, digits, '.', '_' and '-' becomes '_' (separators, NUL, spaces),
    and a name starting with '.' ('..', a hidden file) gets a leading '_'."""
    safe = _UNSAFE.sub("_", name) or "_"
    return "_" + safe if safe.startswith(".") else safe


def path_inside(root: Path, name: str) -> Path:
    """root / safe_file_name(name), checked to resolve inside root."""
    path = root / safe_file_name(name)
    if root.resolve() not in path.resolve().parents:
        raise UserError(f"{name!r}: not a usable file name inside {root}")
    return path
