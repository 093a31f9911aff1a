"""One output sink: reports go to stdout as text or JSON; logs and progress go to stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from enum import Enum
from typing import Any

from rich.console import Console

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
