"""One progress protocol for every long library call: downloads, prepare, training, evaluate,
score and predict all report through a `Progress`.

A call opens a task (`begin`), moves it (`update`), closes it (`end`) and may say a line
(`message`). Tasks are named by a key, so one reporter can show several at once (training
shows its epochs and the steps of the current epoch). The base class is silent: what Python
callers get by default. `PlainProgress` writes timestamped lines (logs, CI); the CLI's Rich
bars (`svqcast.cli.progress`) implement the same five methods, so the library never imports
Rich.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import IO, Any

from svqcast.errors import UsageError


class Progress:
    """Where a long call reports; this base is silent (`progress=None`, ranks > 0, JSON output).

    `update` may be called on every step: implementations keep it cheap.
    """

    def begin(self, key: str, total: float | None = None, *, label: str | None = None, done: float = 0,
              unit: str = "", info: str = "") -> None:
        """Open task `key` (shown as `label`, default the key) at `done` of `total` `unit`s."""

    def update(self, key: str, done: float | None = None, *, advance: float = 0, total: float | None = None,
               info: str | None = None) -> None:
        """Move task `key` to `done` (or by `advance`); `info` is a short status (a loss, a rate)."""

    def end(self, key: str) -> None:
        """Close task `key`."""

    def message(self, text: str) -> None:
        """One line for the reader (an epoch summary, a note)."""

    def close(self) -> None:
        """The call is over: release the terminal."""


SILENT = Progress()


def _fmt_seconds(s: float) -> str:
    s = max(0, int(round(s)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _fmt_amount(value: float, unit: str) -> str:
    if unit == "bytes":
        for scale, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
            if value >= scale:
                return f"{value / scale:.1f} {name}"
        return f"{int(value)} B"
    return f"{int(value)}" if float(value).is_integer() else f"{value:g}"


@dataclass
class _Task:
    label: str
    total: float | None
    done: float
    unit: str
    info: str
    start_done: float
    t0: float
    next_line: float
    finished: bool = False


class PlainProgress(Progress):
    """Timestamped lines on a stream: every message, and each task's state `lines` times over its
    course (its last update once), so a log stays readable whatever the task's length."""

    def __init__(self, stream: IO[str] | None = None, lines: int = 4) -> None:
        self.stream = stream or sys.stderr
        self.lines = max(1, lines)
        self.tasks: dict[str, _Task] = {}

    def _print(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=self.stream, flush=True)

    def begin(self, key: str, total: float | None = None, *, label: str | None = None, done: float = 0,
              unit: str = "", info: str = "") -> None:
        first = done + (total or 0) / self.lines if total else float("inf")
        self.tasks[key] = _Task(label or key, total, done, unit, info, done, time.perf_counter(), first)

    def update(self, key: str, done: float | None = None, *, advance: float = 0, total: float | None = None,
               info: str | None = None) -> None:
        task = self.tasks.get(key)
        if task is None:
            return
        task.done = (task.done if done is None else done) + advance
        task.total = total if total is not None else task.total
        task.info = info if info is not None else task.info
        finished = task.total is not None and task.done >= task.total
        if finished and task.finished:
            return  # the last line is printed once
        if task.done >= task.next_line or finished:
            step = (task.total or 0) / self.lines
            task.next_line = (task.done // step + 1) * step if step > 0 else float("inf")
            task.finished = finished
            self._print(self._line(task))

    def _line(self, task: _Task) -> str:
        total = f"/{_fmt_amount(task.total, task.unit)}" if task.total is not None else ""
        text = f"{task.label}: {_fmt_amount(task.done, task.unit)}{total}"
        if task.info:
            text += f"  {task.info}"
        moved = task.done - task.start_done
        if task.total is not None and 0 < moved and task.done < task.total:
            elapsed = time.perf_counter() - task.t0
            text += f"  eta {_fmt_seconds(elapsed / moved * (task.total - task.done))}"
        return text

    def end(self, key: str) -> None:
        self.tasks.pop(key, None)

    def message(self, text: str) -> None:
        self._print(text)


def resolve_progress(progress: Progress | str | None, enabled: bool = True) -> Progress:
    """`None`/"none" -> silent, "auto"/"plain" -> lines on stderr, a `Progress` -> itself."""
    if not enabled or progress is None or progress == "none":
        return SILENT
    if isinstance(progress, Progress):
        return progress
    if progress in ("auto", "plain"):
        return PlainProgress()
    raise UsageError(f"`progress` {progress!r}: choose auto, plain or none, or pass a svqcast.progress.Progress")


def counted(progress: Progress | None, key: str, total: int, label: str) -> Any:
    """A `tick(done)` for a counted loop over `total` items on `progress` (opened here)."""
    sink = progress or SILENT
    sink.begin(key, total, label=label)

    def tick(done: int) -> None:
        sink.update(key, done)
        if done >= total:
            sink.end(key)

    return tick
