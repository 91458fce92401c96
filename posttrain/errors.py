"""User-facing errors: the CLI prints them as one line and exits non-zero, with no traceback."""


class UserError(Exception):
    """A mistake in the user's input (recipe, data file, model path): message says what and where."""


def row_error(path, row: int, field: str, problem: str) -> UserError:
    """The one-line error for a bad data row: file, 1-based row number, field, problem."""
    return UserError(f"{path}: row {row}: field '{field}': {problem}")


class RunStopped(Exception):
    """Training stopped on a signal after saving a checkpoint: the CLI prints the message as one
    line and exits with `status` (128 + the signal's number, as a shell reports a killed process)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status
