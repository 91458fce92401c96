"""User-facing errors: the CLI prints them as one line and exits non-zero, with no traceback."""


class UserError(Exception):
    """A mistake in the user's input (recipe, data file, model path): message says what and where."""


def row_error(path, row: int, field: str, problem: str) -> UserError:
    """The one-line error for a bad data row: file, 1-based row number, field, problem."""
    return UserError(f"{path}: row {row}: field '{field}': {problem}")
