"""The CLI's one progress adapter: Rich bars on stderr for the library's `svqcast.progress.Progress`.

Every command picks its reporter here (`reporter`): Rich bars on a terminal, timestamped
plain lines otherwise (logs, CI), nothing for `--format json`. The library reports the same
way to all three, so `train`, `download`, `prepare`, `evaluate`, `score` and `predict` draw
alike.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from rich.progress import BarColumn, ProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichBars
from rich.text import Text

from svqcast.cli.output import OutputFormat, err_console
from svqcast.errors import UsageError
from svqcast.progress import SILENT, PlainProgress, Progress

KINDS = ("auto", "rich", "plain", "none")


class _AmountColumn(ProgressColumn):
    """`done/total` in the task's unit: bytes as sizes, anything else as counts."""

    def render(self, task: Any) -> Text:
        unit = task.fields.get("unit", "")

        def fmt(value: float | None) -> str:
            if value is None:
                return "?"
            if unit == "bytes":
                for scale, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
                    if value >= scale:
                        return f"{value / scale:.1f} {name}"
                return f"{int(value)} B"
            return f"{int(value)}"

        return Text(f"{fmt(task.completed)}/{fmt(task.total)}")


class RichProgress(Progress):
    """Rich bars on stderr, one per open task, with the library's messages printed above them."""

    def __init__(self, transient: bool = False) -> None:
        self.bars = RichBars(TextColumn("{task.description}", style="bold", markup=False), BarColumn(), _AmountColumn(),
                             TextColumn("{task.fields[info]}", markup=False), TimeElapsedColumn(), TextColumn("eta"),
                             TimeRemainingColumn(), console=err_console, transient=transient)
        self.tasks: dict[str, Any] = {}
        self.started = False

    def begin(self, key: str, total: float | None = None, *, label: str | None = None, done: float = 0,
              unit: str = "", info: str = "") -> None:
        if not self.started:
            self.bars.start()
            self.started = True
        if key in self.tasks:
            self.bars.remove_task(self.tasks.pop(key))
        self.tasks[key] = self.bars.add_task(label or key, total=total, completed=int(done), unit=unit, info=info)

    def update(self, key: str, done: float | None = None, *, advance: float = 0, total: float | None = None,
               info: str | None = None) -> None:
        task = self.tasks.get(key)
        if task is None:
            return
        fields: dict[str, Any] = {} if info is None else {"info": info}
        if done is not None:
            fields["completed"] = done
        if total is not None:
            fields["total"] = total
        self.bars.update(task, advance=advance or None, **fields)

    def end(self, key: str) -> None:
        task = self.tasks.pop(key, None)
        if task is not None and self.bars.live.transient:
            self.bars.remove_task(task)

    def message(self, text: str) -> None:
        self.bars.console.print(text, markup=False, highlight=False)

    def close(self) -> None:
        if self.started:
            self.bars.stop()
            self.started = False


def make_reporter(kind: str, fmt: OutputFormat | str = "text", *, transient: bool = True) -> Progress:
    """`--progress` KIND for a command writing `fmt`: auto = Rich on a terminal, plain lines otherwise."""
    if kind not in KINDS:
        raise UsageError(f"`progress` {kind!r}: choose {', '.join(KINDS)}")
    if str(getattr(fmt, "value", fmt)) == "json" or kind == "none":
        return SILENT
    if kind == "rich" or (kind == "auto" and err_console.is_terminal):
        return RichProgress(transient=transient)
    return PlainProgress(err_console.file)


@contextlib.contextmanager
def reporter(fmt: OutputFormat | str, kind: str = "auto", *, transient: bool = True) -> Iterator[Progress]:
    """A reporter for one command, closed (the terminal released) when the command ends."""
    sink = make_reporter(kind, fmt, transient=transient)
    try:
        yield sink
    finally:
        sink.close()
