"""Data files -> validated records.

Readers yield `(row number, row)` pairs, lazily where the format allows. A row the reader itself
cannot make into an object (a bad JSON line, a CSV line with too many cells) comes out as a
RecordError in place of the row, so `load_records` can skip it like any invalid row instead of
aborting the whole file.
"""

import csv
import itertools
import json
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posttrain.config.recipe import DEFAULT_MAX_ROW_BYTES
from posttrain.data.records import (
    Record,
    RecordError,
    check_kind,
    describe_type,
    detect_kind,
    record_kind,
    to_record,
)
from posttrain.data.text_files import (
    byte_lines,
    cannot_read,
    check_row,
    not_utf8,
    text_lines,
    too_large,
)
from posttrain.errors import UserError, row_error

SUPPORTED_FORMATS = ".jsonl, .json, .parquet, .csv, or a directory written by datasets' save_to_disk"
ON_ERROR_CHOICES = ("fail", "skip")
DEFAULT_SPLIT = "train"
# A .json object with one of these keys is a single record, not a wrapper around a list of records.
_RECORD_FIELDS = ("text", "messages", "conversations", "instruction", "chosen", "rejected", "prompt")

RawRow = tuple[int, dict[str, Any] | RecordError]


@dataclass
class LoadedRecords:
    """The valid records of one file, all of one kind, and how many invalid rows were skipped.
    `rows[i]` is the file row of `records[i]`, so later checks (length, ...) can name it."""

    path: str
    records: list[Record]
    skipped: int
    kind: str
    rows: list[int]


def read_rows(
    path: str | Path,
    split: str | None = None,
    max_row_bytes: int | None = None,
    on_invalid: Callable[[int, RecordError], None] | None = None,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (1-based row number, row) for every row of a data file or saved dataset directory;
    a row that is not an object (or fails check_row, e.g. above max_row_bytes) raises the one-line
    row error, or is passed to on_invalid and left out. No size limit by default: most callers
    re-read rows that load_records has already held to the recipe's."""
    for number, row in _raw_rows(path, split, max_row_bytes):
        if isinstance(row, RecordError):
            if on_invalid is None:
                raise row_error(path, number, row.field, row.problem)
            on_invalid(number, row)
            continue
        yield number, row


def validated_rows(
    path: str | Path, split: str | None = None, on_error: str = "fail"
) -> Iterator[tuple[int, dict[str, Any]]]:
    """read_rows for a second pass over a file load_records has validated: with on_error "skip"
    the rows it skipped (not JSON, not an object, too large) are left out silently (that pass
    counted and warned about them), so the raw rows line up with its records."""
    return read_rows(path, split, on_invalid=_ignore if on_error == "skip" else None)


def _ignore(number: int, err: RecordError) -> None:
    """on_invalid for validated_rows: the row was reported when it was validated."""


def load_records(
    path: str | Path,
    kind: str = "auto",
    on_error: str = "fail",
    split: str | None = None,
    columns: dict[str, str] | None = None,
    max_row_bytes: int | None = DEFAULT_MAX_ROW_BYTES,
) -> LoadedRecords:
    """Read and validate every row of `path` as `kind`, all held in memory (see RecordStream for
    the rules; it is the one validating pass, used directly where data may exceed memory)."""
    stream = RecordStream(path, kind, on_error, split, columns, max_row_bytes)
    numbers, records = [], []
    for number, record in stream:
        numbers.append(number)
        records.append(record)
    return LoadedRecords(str(path), records, stream.skipped, stream.kind, numbers)


class RecordStream:
    """The valid records of `path` as (row number, record), read and validated lazily.

    kind="auto" detects the kind from the first valid row and holds every later row to it, so a
    file never yields a mix of kinds. `columns` renames fields before validation ({"question":
    "prompt"}); errors still name the file's own column. on_error="skip" drops invalid rows with
    one warning instead of failing on the first. A row above `max_row_bytes` is invalid too.
    After a full iteration `skipped` and `kind` hold the counts; a file without one valid row is
    an error."""

    def __init__(
        self,
        path: str | Path,
        kind: str = "auto",
        on_error: str = "fail",
        split: str | None = None,
        columns: dict[str, str] | None = None,
        max_row_bytes: int | None = DEFAULT_MAX_ROW_BYTES,
    ):
        _check_options(kind, on_error)
        self.path, self.kind, self.on_error, self.split = str(path), kind, on_error, split
        self.columns, self.max_row_bytes = columns or {}, max_row_bytes
        self.skipped = 0

    def __iter__(self) -> Iterator[tuple[int, Record]]:
        skips = _SkippedRows()
        detected = None  # kind="auto": the kind of the first valid row
        for number, row in _raw_rows(self.path, self.split, self.max_row_bytes):
            try:
                record = _row_record(row, self.kind, detected, self.columns)
            except RecordError as err:
                err = _in_file_terms(err, self.columns)
                if self.on_error == "fail":
                    raise row_error(self.path, number, err.field, err.problem) from None
                skips.add(number, err)
                continue
            detected = record_kind(record)
            yield number, record
        skips.warn(self.path)
        self.skipped = skips.count
        if detected is None:
            raise UserError(f"{self.path}: no valid rows")
        self.kind = detected


# ---- validation helpers ----------------------------------------------------------------------


def _check_options(kind: str, on_error: str) -> None:
    check_kind(kind)
    if on_error not in ON_ERROR_CHOICES:
        raise UserError(f"unknown on_error {on_error!r}; expected one of {', '.join(ON_ERROR_CHOICES)}")


def _row_record(row: dict[str, Any] | RecordError, kind: str, detected: str | None, columns: dict[str, str]) -> Record:
    """Validate one row as `kind`; with kind="auto", once `detected` is known, as that kind."""
    if isinstance(row, RecordError):
        raise row
    row = _renamed(row, columns)
    if kind != "auto":
        return to_record(row, kind)  # the user named the kind: e.g. preference rows read as prompts
    if detected is not None:
        _check_same_kind(row, detected)
    return to_record(row, detected or "auto")


def _check_same_kind(row: dict[str, Any], kind: str) -> None:
    """Name a row of a clearly different kind as such, rather than reporting its missing fields."""
    try:
        row_kind = detect_kind(row)
    except RecordError:
        return  # no recognisable kind: validating it as `kind` says which field is missing
    if row_kind != kind:
        raise RecordError("(kind)", f"looks like a {row_kind} row, but this file holds {kind} rows")


def _renamed(row: dict[str, Any], columns: dict[str, str]) -> dict[str, Any]:
    """Apply the user's renames; a renamed field wins over an unrenamed one of the same name."""
    if not columns:
        return row
    renamed = {key: value for key, value in row.items() if key not in columns}
    renamed.update({columns[key]: value for key, value in row.items() if key in columns})
    return renamed


def _in_file_terms(err: RecordError, columns: dict[str, str]) -> RecordError:
    """Rewrite a field path like `prompt[0].content` back to the file's column (`question[0].content`)."""
    original_of = {new: old for old, new in columns.items()}
    head = re.match(r"[^.\[]*", err.field).group()
    if head not in original_of:
        return err
    return RecordError(original_of[head] + err.field[len(head) :], err.problem)


@dataclass
class _SkippedRows:
    """Counts invalid rows in skip mode and remembers the first, for a single summary warning."""

    count: int = 0
    first: tuple[int, RecordError] | None = None

    def add(self, number: int, err: RecordError) -> None:
        self.count += 1
        self.first = self.first or (number, err)

    def warn(self, path: str | Path) -> None:
        if not self.count:
            return
        number, err = self.first
        rows = "row" if self.count == 1 else "rows"
        first = f"row {number} field '{err.field}': {err.problem}"
        warnings.warn(f"{path}: skipped {self.count} invalid {rows} (first: {first})", stacklevel=3)


# ---- readers ---------------------------------------------------------------------------------


def _raw_rows(path: str | Path, split: str | None, max_row_bytes: int | None) -> Iterator[RawRow]:
    """Pick the reader for `path`; path problems raise here, before any row is read. Every row
    then passes check_row (size, valid text), so no reader's caller tokenises a bad one."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file or directory")
    if path.is_dir():
        rows = _dataset_dir_rows(path, split)
    else:
        reader = _READERS.get(path.suffix.lower())
        if reader is None:
            suffix = f"format '{path.suffix}'" if path.suffix else "file with no extension"
            raise UserError(f"{path}: unsupported {suffix}; supported: {SUPPORTED_FORMATS}")
        _check_no_split(path, split)
        rows = reader(path, max_row_bytes) if reader is _jsonl_rows else reader(path)
    return ((n, row if isinstance(row, RecordError) else check_row(row, max_row_bytes)) for n, row in rows)


def _check_no_split(path: Path, split: str | None) -> None:
    """Only a DatasetDict has splits; "train" is accepted anywhere as the natural default."""
    if split not in (None, DEFAULT_SPLIT):
        raise UserError(f"{path}: has no split '{split}': only a directory saved from a DatasetDict has splits")


def _jsonl_rows(path: Path, max_row_bytes: int | None) -> Iterator[RawRow]:
    """Row number = line number, so the user can jump to it; blank lines are skipped. A line that
    is too long or not UTF-8 is an invalid row (skippable), checked before it is parsed."""
    for number, offset, line in byte_lines(path):
        if max_row_bytes is not None and len(line) > max_row_bytes:
            yield number, too_large(len(line), max_row_bytes)
        elif problem := not_utf8(line, offset):
            yield number, RecordError("(utf-8)", problem)
        elif line.strip():
            yield number, _json_line(line.decode("utf-8"))


def _json_line(line: str) -> dict[str, Any] | RecordError:
    try:
        value = json.loads(line.strip())  # without the line ending, a cut-off line reads as unterminated
    except json.JSONDecodeError as err:
        return RecordError("(json)", f"invalid JSON: {_json_problem(err)} at column {err.colno}")
    except RecursionError:
        return RecordError("(json)", "nested too deeply to read (arrays/objects inside each other)")
    return _object_or_error(value)


def _json_problem(err: json.JSONDecodeError) -> str:
    """Some decoder messages end in "at" ("Unterminated string starting at"); the caller adds its own."""
    return err.msg.removesuffix(" at")


def _json_rows(path: Path) -> Iterator[RawRow]:
    """A .json file is read whole (JSON cannot be streamed with the standard library)."""
    try:
        data = json.loads("".join(text_lines(path)))
    except json.JSONDecodeError as err:
        where = f"line {err.lineno} column {err.colno}"
        raise UserError(f"{path}: invalid JSON: {_json_problem(err)} at {where}") from None
    except RecursionError:
        raise UserError(f"{path}: invalid JSON: nested too deeply to read") from None
    for number, value in enumerate(_json_row_list(path, data), start=1):
        yield number, _object_or_error(value)


def _json_row_list(path: Path, data: Any) -> list:
    """The rows of a .json file: a top-level list, or the one list inside a wrapper like {"data": [...]}."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        if any(key in data for key in _RECORD_FIELDS):
            raise UserError(f"{path}: holds a single record; a .json file must hold a list of records")
        lists = [value for value in data.values() if isinstance(value, list)]
        if len(lists) == 1:
            return lists[0]
        got = f"an object with {len(lists)} list values"
    else:
        got = describe_type(data)
    expected = 'a list of records, or an object holding one such list like {"data": [...]}'
    raise UserError(f"{path}: expected {expected}; got {got}")


def _object_or_error(value: Any) -> dict[str, Any] | RecordError:
    if isinstance(value, dict):
        return value
    return RecordError("(json)", f"expected a JSON object, got {describe_type(value)}")


def _parquet_rows(path: Path) -> Iterator[RawRow]:
    """Read in record batches so a large file is never fully in memory as Python objects."""
    import pyarrow
    import pyarrow.parquet

    try:
        parquet_file = pyarrow.parquet.ParquetFile(path)
    except (pyarrow.ArrowException, OSError) as err:
        raise UserError(f"{path}: cannot read as Parquet: {err}") from None
    numbers = itertools.count(1)
    for batch in parquet_file.iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            yield next(numbers), row


def _csv_rows(path: Path) -> Iterator[RawRow]:
    """Row 1 is the first data row; blank lines are not counted. Cells are strings, and a row
    shorter than the header simply lacks its last fields."""
    csv.field_size_limit(2**31 - 1)  # the 128 KiB default is too small for pre-training documents
    reader = csv.reader(text_lines(path))
    non_blank = (cells for cells in reader if cells)
    try:
        header = next(non_blank, None)
        for number, cells in enumerate(non_blank, start=1):
            yield number, _csv_row(header, cells)
    except csv.Error as err:
        raise UserError(f"{path}: line {reader.line_num}: invalid CSV: {err}") from None


def _csv_row(header: list[str], cells: list[str]) -> dict[str, Any] | RecordError:
    if len(cells) > len(header):
        return RecordError("(csv)", f"{len(cells)} cells, but the header has {len(header)} columns")
    return dict(zip(header, cells))


def _dataset_dir_rows(path: Path, split: str | None) -> Iterator[RawRow]:
    """A directory written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk` (memory-mapped)."""
    import datasets  # slow to import: only when a directory is actually read

    try:
        loaded = datasets.load_from_disk(str(path))
    except FileNotFoundError:
        problem = "directory is not a dataset written by save_to_disk"
        raise UserError(f"{path}: {problem}; supported: {SUPPORTED_FORMATS}") from None
    except OSError as err:
        raise cannot_read(path, err) from None
    if isinstance(loaded, datasets.DatasetDict):
        loaded = _pick_split(path, loaded, split or DEFAULT_SPLIT)
    else:
        _check_no_split(path, split)
    return enumerate(loaded, start=1)


def _pick_split(path: Path, splits: Any, split: str) -> Any:
    if split not in splits:
        raise UserError(f"{path}: no split '{split}'; available splits: {', '.join(splits)}")
    return splits[split]


_READERS = {".jsonl": _jsonl_rows, ".json": _json_rows, ".parquet": _parquet_rows, ".csv": _csv_rows}
