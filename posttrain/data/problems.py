"""data.on_error for problems found after a row was validated (too long for max_length, a
missing score column, ...): fail raises the first one naming its file, row and field; skip
drops such rows, counts them and warns once per file."""

from __future__ import annotations

import warnings

from posttrain.errors import UserError, row_error


class RowProblems:
    def __init__(self, path: str, on_error: str):
        self.path, self.on_error, self.count, self.first = path, on_error, 0, ""

    def add(self, row: int, field: str, problem: str) -> None:
        """Raise (on_error: fail) or count the row as skipped (on_error: skip)."""
        if self.on_error == "fail":
            raise row_error(self.path, row, field, problem)
        self.count += 1
        self.first = self.first or f"row {row} field '{field}': {problem}"

    def finish(self, kept: int, what: str) -> None:
        """One warning for the skipped rows; an error when nothing usable is left."""
        if self.count:
            warnings.warn(f"{self.path}: skipped {self.count} rows (first: {self.first})", stacklevel=3)
        if not kept:
            raise UserError(f"{self.path}: no usable {what}")
