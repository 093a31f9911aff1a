"""Counted progress for `predict`, `score` and `evaluate`: the library reports `(done, total)`
through an injected callback; this module turns it into a Rich bar on a terminal, plain
lines otherwise (logs, CI), and nothing at all with `--format json`."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from svqcast.cli.output import OutputFormat, err_console

Callback = Callable[[int, int], None]


def _noop(done: int, total: int) -> None:
    """Progress sink for machine-readable runs."""


class _PlainLines:
    """One stderr line at most every `every` seconds (and at the end): readable in a log."""

    def __init__(self, label: str, every: float = 5.0) -> None:
        self.label, self.every, self.last = label, every, 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - self.last >= self.every:
            self.last = now
            err_console.print(f"{self.label}: {done}/{total}", soft_wrap=True)


@contextlib.contextmanager
def counted(label: str, fmt: OutputFormat | str, *, enabled: bool = True) -> Iterator[Callback]:
    """A `(done, total)` callback: Rich on a terminal, plain lines otherwise, silent for json."""
    if str(getattr(fmt, "value", fmt)) == "json" or not enabled:
        yield _noop
        return
    if not err_console.is_terminal:
        yield _PlainLines(label)
        return

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err_console, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
