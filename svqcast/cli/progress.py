"""Rich progress bars for `svqcast train`, injected into the loop as its ProgressSink.

Rich lives only under svqcast/cli/; the training library reports through the small
`svqcast.training.runlog.ProgressSink` interface and never imports it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from rich.console import Console

from svqcast.training.runlog import ProgressSink, epoch_line, make_progress


class RichProgress(ProgressSink):
    """Two Rich bars on stderr: epochs, and steps of the current epoch (loss, ETA)."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = Console(stderr=True, highlight=False)
        self.bars = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.epochs = 0
        self._epoch_task: Any = None
        self._step_task: Any = None

    def start(self, first_epoch: int, epochs: int) -> None:
        self.epochs = epochs
        self.bars.start()
        self._epoch_task = self.bars.add_task("epochs", total=epochs, completed=first_epoch, info="")

    def start_epoch(self, epoch: int, steps: int, lr: float) -> None:
        if self._step_task is not None:
            self.bars.remove_task(self._step_task)
        self._step_task = self.bars.add_task(f"epoch {epoch + 1}", total=steps, info=f"lr {lr:.3g}")

    def step(self, done: int) -> None:
        self.bars.update(self._step_task, completed=done)

    def log(self, done: int, loss: float) -> None:
        self.bars.update(self._step_task, completed=done, info=f"loss {loss:.5f}")

    def end_epoch(self, row: Mapping[str, Any]) -> None:
        self.bars.console.print(epoch_line(row, self.epochs))
        self.bars.update(self._epoch_task, completed=int(row["epoch"]) + 1)

    def message(self, text: str) -> None:
        self.bars.console.print(text)

    def close(self) -> None:
        self.bars.stop()


def training_progress(kind: str) -> ProgressSink:
    """`--progress`: auto (Rich on a terminal, plain lines otherwise), rich, plain, none."""
    if kind == "rich" or (kind == "auto" and sys.stderr.isatty()):
        return RichProgress()
    return make_progress(kind)
