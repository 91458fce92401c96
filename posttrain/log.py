"""Training metrics: one JSON line per logging step (the record reports and tests read), mirrored to
TensorBoard and optionally Weights & Biases; plus the console progress bar.

Only the main process should write: build the logger with enabled=False elsewhere and every call is a
no-op, so training code never branches on the process rank itself.
"""

import contextlib
import json
import math
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from posttrain.errors import UserError

METRICS_FILE = "metrics.jsonl"


class MetricsLogger:
    """Writes metrics to out_dir/metrics.jsonl, out_dir/tb (TensorBoard) and wandb when a project is set."""

    def __init__(
        self,
        out_dir: str | os.PathLike,
        tensorboard: bool = True,
        wandb_project: str | None = None,
        run_name: str | None = None,
        config: dict | None = None,
        enabled: bool = True,
    ) -> None:
        self.enabled = enabled
        self.out_dir = Path(out_dir)
        self.metrics_path = self.out_dir / METRICS_FILE
        self._use_tensorboard = tensorboard
        self._jsonl = None
        self._tb_writer = None
        self._wandb_run = None
        if not enabled:
            return
        wandb = _import_wandb() if wandb_project else None  # fail before creating any files
        with _write_errors_named(self.metrics_path):
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._jsonl = open(self.metrics_path, "a", encoding="utf-8")
        if tensorboard:
            self._tb_writer = _summary_writer(self.out_dir / "tb")
        if wandb is not None:
            self._wandb_run = wandb.init(project=wandb_project, name=run_name, config=config, dir=str(self.out_dir))

    def log(self, metrics: dict[str, Any], step: int) -> None:
        """Record `metrics` at optimizer step `step`; tensors and numpy scalars are turned into python numbers."""
        if not self.enabled:
            return
        row = {"step": step, **{key: _plain_value(value) for key, value in metrics.items()}}
        with _write_errors_named(self.metrics_path):
            self._jsonl.write(json.dumps(row) + "\n")
            self._jsonl.flush()  # a crash keeps every line logged so far
        scalars = {key: value for key, value in row.items() if key != "step" and _is_number(value)}
        if self._tb_writer is not None:
            for key, value in scalars.items():
                self._tb_writer.add_scalar(key, value, global_step=step)
        if self._wandb_run is not None:
            self._wandb_run.log(scalars, step=step)

    def truncate_after(self, step: int) -> None:
        """Drop everything logged after `step`, so a resumed run does not log those steps twice.

        The JSONL file is rewritten atomically (temp file + os.replace). TensorBoard is reopened with
        purge_step, which hides its events past `step` in the same way.
        """
        if not self.enabled:
            return
        self._jsonl.close()
        kept = [row for row in read_metrics(self.metrics_path) if row["step"] <= step]
        with _write_errors_named(self.metrics_path):
            _write_jsonl_atomically(self.metrics_path, kept)
            self._jsonl = open(self.metrics_path, "a", encoding="utf-8")
        if self._tb_writer is not None:
            self._tb_writer.close()
            self._tb_writer = _summary_writer(self.out_dir / "tb", purge_step=step + 1)

    def close(self) -> None:
        """Flush and close every sink; safe to call twice."""
        if self._jsonl is not None:
            with contextlib.suppress(OSError):  # a failed write was already reported
                self._jsonl.close()
            self._jsonl = None
        if self._tb_writer is not None:
            self._tb_writer.close()
            self._tb_writer = None
        if self._wandb_run is not None:
            self._wandb_run.finish()
            self._wandb_run = None

    def __enter__(self) -> "MetricsLogger":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def progress_bar(total: int, initial: int = 0, desc: str = "train", enabled: bool = True) -> tqdm:
    """A tqdm bar over optimizer steps (with ETA); `initial` is the resume step so ETA stays right.

    The caller sets tokens/s and loss with bar.set_postfix(...). Disabled bars (non-main processes)
    print nothing.
    """
    return tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True, disable=not enabled)


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a metrics.jsonl file (or of the one inside a run directory), in file order.

    An unparseable last line is skipped: it is what a process killed mid-write leaves behind.
    An unparseable line anywhere else means the file is not a metrics log, and is an error.
    """
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    if not path.exists():
        raise UserError(f"{path}: metrics file not found")
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = []
    for index, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if index == len(lines) - 1:
                break
            raise UserError(f"{path}: line {index + 1} is not valid JSON") from None
    return rows


@contextlib.contextmanager
def _write_errors_named(path: Path):
    """Disk full or no permission: one line naming the file, not a traceback."""
    try:
        yield
    except OSError as err:
        raise UserError(f"{err.filename or path}: cannot write metrics: {err.strerror}") from None


def _import_wandb():
    try:
        import wandb
    except ImportError:
        raise UserError("wandb_project is set but wandb is not installed: pip install wandb") from None
    return wandb


def _summary_writer(log_dir: Path, purge_step: int | None = None):
    # Imported here: tensorboard is slow to import and unneeded when it is switched off.
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)


def _plain_value(value: Any) -> Any:
    """Python number for a 0-d tensor / numpy scalar (json cannot encode those); anything else unchanged."""
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _write_jsonl_atomically(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp_path = path.with_name(path.name + ".tmp")
    with open(tmp_path, "w", encoding="utf-8") as tmp:
        tmp.writelines(json.dumps(row) + "\n" for row in rows)
        tmp.flush()
        os.fsync(tmp.fileno())
    os.replace(tmp_path, path)


@dataclass
class Series:
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


def series_of(rows: list[dict[str, Any]]) -> dict[str, Series]:
    """One (steps, values) series per numeric key; training and evaluation rows share the file
    under distinct keys (eval_* and the generation metrics), so each key is one curve."""
    out: dict[str, Series] = {}
    for row in rows:
        step = row.get("step")
        for key, value in row.items():
            if key == "step" or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if not math.isfinite(value):
                continue
            series = out.setdefault(key, Series())
            series.steps.append(step)
            series.values.append(float(value))
    return out
