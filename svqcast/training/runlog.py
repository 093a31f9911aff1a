"""What a run writes while it trains: per-epoch metrics files and progress on stderr.

* ``RUN/metrics.csv`` and ``RUN/metrics.jsonl``: one row per finished epoch with the
  columns of :data:`COLUMNS`. Both are rewritten atomically on every epoch, so a crash
  never leaves a torn line, and a resumed run drops rows of epochs it is about to redo.
* TensorBoard scalars under ``RUN/tensorboard/`` when ``train.tensorboard = true``
  (needs the ``tensorboard`` extra).
* :func:`epoch_line`, the one-line epoch summary that training reports through its
  :class:`svqcast.progress.Progress` (plain lines, Rich bars or nothing).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from svqcast.errors import MissingExtraError
from svqcast.fsutil import atomic_write_text

COLUMNS = (
    "epoch",  # 0-based epoch index
    "step",  # optimizer steps done after this epoch (all epochs)
    "lr",  # learning rate of the epoch's first step
    "train_loss",  # mean training loss (criterion + weighted aux) over the epoch's samples
    "train_aux_loss",  # mean quantizer auxiliary loss (unweighted) over the epoch's samples
    "val_loss",  # mean validation loss over all validation samples
    "best_val_loss",  # best validation loss so far
    "is_best",  # this epoch's weights were written to RUN/best/
    "seconds",  # wall time of the epoch (training + validation)
    "samples_per_s",  # training samples per second, all ranks together
)


class RunLog:
    """metrics.csv / metrics.jsonl (and optional TensorBoard) of one run directory."""

    def __init__(self, run_dir: Path, tensorboard: bool = False, enabled: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.rows: list[dict[str, Any]] = []
        self._tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise MissingExtraError("TensorBoard logging", "tensorboard", "tensorboard") from None
            self._tb = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))

    @property
    def jsonl_path(self) -> Path:
        return self.run_dir / "metrics.jsonl"

    @property
    def csv_path(self) -> Path:
        return self.run_dir / "metrics.csv"

    def load_existing(self, before_epoch: int) -> None:
        """Keep the rows of epochs < `before_epoch` from an earlier (interrupted) run."""
        self.rows = [r for r in read_metrics(self.run_dir) if int(r["epoch"]) < before_epoch]

    def append(self, row: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        row = {k: row.get(k) for k in COLUMNS}
        self.rows.append(row)
        self._write()
        if self._tb is not None:
            for key in ("lr", "train_loss", "train_aux_loss", "val_loss", "samples_per_s"):
                value = row.get(key)
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self._tb.add_scalar(key, value, int(row["epoch"]))
            self._tb.flush()

    def _write(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.jsonl_path, "".join(json.dumps(r) + "\n" for r in self.rows))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.csv_path, buf.getvalue())

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of ``RUN/metrics.jsonl`` (empty when the run has not finished an epoch)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def epoch_line(row: Mapping[str, Any], epochs: int) -> str:
    """The one-line summary of a finished epoch (plain and Rich progress print it)."""
    val = row.get("val_loss")
    val_s = f"{val:.5f}" if isinstance(val, float) else "-"
    return (
        f"epoch {int(row['epoch']) + 1}/{epochs}  train_loss {row['train_loss']:.5f}  "
        f"val_loss {val_s}  lr {row['lr']:.3g}  {row['seconds']:.1f}s  "
        f"{row['samples_per_s']:.1f} samples/s{'  *best' if row.get('is_best') else ''}"
    )


