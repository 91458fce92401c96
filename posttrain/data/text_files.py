"""Reading a data file's text: UTF-8 only, every problem one line naming the file and where in it.

Lines are read as bytes and decoded one at a time, so a byte that is not UTF-8 names its line and
byte offset (and a JSONL reader can skip just that row) instead of failing the whole file with a
traceback. Row checks (`check_row`) run on every row of every reader before anything is tokenised.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from posttrain.data.records import RecordError
from posttrain.errors import UserError

BOM = b"\xef\xbb\xbf"


def cannot_read(path: Path, err: OSError) -> UserError:
    """A file that exists but cannot be opened (no permission, a directory, an I/O error)."""
    return UserError(f"{path}: cannot read: {err.strerror or err}")


def byte_lines(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """(1-based line number, byte offset of the line in the file, the line's bytes); a leading
    UTF-8 byte-order mark is dropped from line 1 (its offset still counts it)."""
    try:
        handle = path.open("rb")
    except OSError as err:
        raise cannot_read(path, err) from None
    with handle:
        offset = 0
        for number, line in enumerate(handle, start=1):
            start = offset
            offset += len(line)
            yield number, start, line[len(BOM) :] if number == 1 and line.startswith(BOM) else line


def not_utf8(line: bytes, offset: int) -> str | None:
    """None when `line` decodes as UTF-8, else the problem with the file byte offset of the bad byte."""
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as err:
        return f"not UTF-8 text: byte 0x{line[err.start]:02x} at byte offset {offset + err.start} ({err.reason})"
    return None


def text_lines(path: Path) -> Iterator[str]:
    """Decoded lines with their endings (what csv.reader takes); a non-UTF-8 byte is an error naming
    its line and byte offset."""
    for number, offset, line in byte_lines(path):
        problem = not_utf8(line, offset)
        if problem:
            raise UserError(f"{path}: line {number}: {problem}")
        yield line.decode("utf-8")


def read_text_file(path: Path) -> str:
    """A whole UTF-8 text file (e.g. a perplexity task's .txt)."""
    return "".join(text_lines(Path(path)))


def check_row(row: dict[str, Any], max_bytes: int | None) -> dict[str, Any] | RecordError:
    """The row itself, or a RecordError for a row whose strings together exceed `max_bytes` UTF-8
    bytes or hold a lone surrogate (a JSON escape like \\ud800 is not text: tokenizers reject it
    with a TypeError that names nothing). Walked without recursion: a row may nest deeply."""
    total, stack = 0, [("", row)]
    while stack:
        field, value = stack.pop()
        if isinstance(value, str):
            try:
                total += len(value.encode("utf-8"))
            except UnicodeEncodeError as err:
                char = f"\\u{ord(value[err.start]):04x}"
                return RecordError(field or "(row)", f"lone surrogate {char} at character {err.start}: not valid text")
        elif isinstance(value, dict):
            stack += [(f"{field}.{key}" if field else str(key), item) for key, item in value.items()]
        elif isinstance(value, list | tuple):
            stack += [(f"{field}[{index}]", item) for index, item in enumerate(value)]
        if max_bytes is not None and total > max_bytes:
            return too_large(total, max_bytes, at_least=True)
    return row


ROW_LIMIT = "data.max_row_bytes"
ROW_LIMIT_HINT = " (raise it, or set data.on_error: skip)"  # evaluation files rephrase both


def too_large(size: int, max_bytes: int, at_least: bool = False) -> RecordError:
    more = "at least " if at_least else ""
    return RecordError("(row)", f"{more}{size} bytes, above {ROW_LIMIT} {max_bytes}{ROW_LIMIT_HINT}")
