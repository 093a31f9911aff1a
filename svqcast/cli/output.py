"""One output sink: reports go to stdout as text or JSON; logs and progress go to stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from enum import Enum
from typing import Any

from rich.console import Console
from rich.table import Table

# Logs, progress bars and errors: stderr, so `--format json` output stays machine-readable.
# markup off: names, titles and notes come from user files and may hold "[...]"; styling is
# applied with rich.text.Text where wanted, never by parsing strings
err_console = Console(stderr=True, highlight=False, markup=False)
out_console = Console(highlight=False, markup=False)


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


def _default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    return str(obj)


def emit(data: Any, fmt: OutputFormat | str, text: Callable[[Any], None] | None = None) -> None:
    """Print `data` as JSON, or hand it to `text` to render for humans."""
    if str(getattr(fmt, "value", fmt)) == "json":
        sys.stdout.write(json.dumps(data, indent=2, default=_default) + "\n")
        sys.stdout.flush()
    elif text is not None:
        text(data)
    else:
        out_console.print(data)


def log(message: str) -> None:
    err_console.print(message)


def print_table(columns: list[tuple[str, bool]], rows: list[list[str]]) -> None:
    """A table that never cuts what a user copies: columns marked True (names, presets, numbers)
    keep their full width; the others wrap. When even the copyable columns do not fit the
    terminal, each row is printed as `column: value` lines instead."""
    keys = [i for i, (_, copy) in enumerate(columns) if copy]
    widths = {i: max([len(columns[i][0]), *(len(str(r[i])) for r in rows)]) for i in keys}
    wrapped = len(columns) - len(keys)
    if out_console.width - sum(widths.values()) - 2 * len(columns) < 16 * max(1, wrapped):  # too narrow to read
        for r in rows:
            out_console.print(str(r[keys[0]]) if keys else "", style="bold")
            for i, (name, _) in enumerate(columns):
                if i != (keys[0] if keys else -1):
                    out_console.print(f"  {name}: {r[i]}")
        return
    table = Table(box=None, pad_edge=False)
    for i, (name, copy) in enumerate(columns):
        if copy:
            table.add_column(name, no_wrap=True, min_width=widths[i])
        else:
            table.add_column(name, overflow="fold")
    for r in rows:
        table.add_row(*(str(v) for v in r))
    out_console.print(table)


def plural(n: int, word: str) -> str:
    """"1 sample", "2 samples": counts people read."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def print_event_scores(name: str, by_forecast: dict[str, dict[str, Any]]) -> None:
    """One table per threshold: a row per (forecast, score), a column per lead."""
    first = next(iter(by_forecast.values()))
    for thr, row in first.items():
        leads = len(row["csi"])
        table = Table(title=f"{name} >= {thr} (events observed: {row['events_observed']})")
        table.add_column("forecast")
        table.add_column("score")
        for j in range(leads):
            table.add_column(f"+{j + 1}", justify="right")
        for f, rows in by_forecast.items():
            scores = [("csi", rows[thr]["csi"]), ("ets", rows[thr]["ets"])]
            scores += [(f"fss {k}x{k}", v) for k, v in rows[thr]["fss"].items()]
            for label, values in scores:
                table.add_row(f, label, *["-" if v is None else f"{v:.3g}" for v in values])
        out_console.print(table)
