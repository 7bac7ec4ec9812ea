"""Per-epoch logs of a run: ``metrics.jsonl`` (one JSON object per epoch), ``metrics.csv`` (the same
rows, nested values flattened to ``train_fit.acc_intact`` columns) and, optionally, TensorBoard
event files under ``tensorboard/`` (``tensorboard`` package, imported only when asked for)."""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from ..atomic import append_text, write_text_atomic


def flatten_row(row: dict, prefix: str = "") -> dict:
    """``{"a": 1, "fit": {"x": 2}}`` -> ``{"a": 1, "fit.x": 2}`` (lists are kept as JSON text)."""
    out = {}
    for key, val in row.items():
        name = f"{prefix}{key}"
        if isinstance(val, dict):
            out.update(flatten_row(val, name + "."))
        elif isinstance(val, (list, tuple)):
            out[name] = json.dumps(val)
        else:
            out[name] = val
    return out


def metrics_csv(history: list[dict]) -> str:
    """The rows of ``history`` as CSV text: one column per flattened key (in first-seen order),
    empty cells where an epoch lacks a key (e.g. ``train_fit`` measured every N epochs)."""
    rows = [flatten_row(r) for r in history]
    columns = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)       # floats as repr: they read back to the same value
    return buf.getvalue()


def format_lr(lr: float) -> str:
    """A learning rate as the epoch line prints it: ``0.1000`` from 1e-3 up (and 0), ``3.0e-05``
    below (four decimals would print ``0.0000`` for a fine-tuning rate such as 3e-5)."""
    return f"{lr:.1e}" if 0 < abs(lr) < 1e-3 else f"{lr:.4f}"


def format_epoch_line(row: dict) -> str:
    """The line printed at the end of an epoch: ``key value`` pairs of ``row`` joined by `` | ``,
    floats to four decimals, the learning rate by :func:`format_lr`, ``train_fit`` left out
    (it is in the logs)."""
    return " | ".join(f"{k} {format_lr(v)}" if k == "lr" and isinstance(v, float)
                      else f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                      for k, v in row.items() if k != "train_fit")


class RunLog:
    """Writes one epoch row to every log of a run directory (main process only).

    ``append(row, history)``: ``row`` goes to ``metrics.jsonl``; ``metrics.csv`` is rewritten
    atomically from ``history`` (which ends with ``row``), so its columns always cover every epoch;
    TensorBoard gets each finite number of ``row`` as a scalar at step ``row["epoch"]``.
    """

    def __init__(self, run_dir: str | Path, tensorboard: bool = False):
        self.run_dir = Path(run_dir)
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                raise ImportError("tensorboard logging needs the tensorboard package: "
                                  "pip install tensorboard (or ferlab[dev])") from e
            self.writer = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))

    @staticmethod
    def clear(run_dir: str | Path) -> None:
        """Remove the logs an earlier run left in ``run_dir`` (a fresh run starts them anew)."""
        run_dir = Path(run_dir)
        for stale in (run_dir / "metrics.jsonl", run_dir / "metrics.csv",
                      *(run_dir / "tensorboard").glob("events.out.tfevents.*")):
            stale.unlink(missing_ok=True)

    def append(self, row: dict, history: list[dict]) -> None:
        """Log the epoch ``row``: a line of ``metrics.jsonl``, ``metrics.csv`` rewritten from
        ``history`` (which ends with ``row``), its finite numbers to TensorBoard when enabled."""
        append_text(self.run_dir / "metrics.jsonl", json.dumps(row) + "\n")
        write_text_atomic(metrics_csv(history), self.run_dir / "metrics.csv")
        if self.writer is not None:
            for key, val in flatten_row(row).items():
                if key != "epoch" and isinstance(val, (int, float)) and not isinstance(val, bool) \
                        and math.isfinite(val):
                    self.writer.add_scalar(key, val, global_step=int(row["epoch"]))
            self.writer.flush()

    def close(self) -> None:
        """Flush and close the TensorBoard writer (if any); the JSON and CSV files need no closing."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
