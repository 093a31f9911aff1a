"""Lead times and time steps in words: parsing `--lead-time`, writing a step for people."""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any

import numpy as np

from svqcast.errors import UsageError


def format_step(step: np.timedelta64) -> str:
    seconds = int(step / np.timedelta64(1, "s"))
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}min"
    return f"{seconds}s"


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_LEAD_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(d|days?|h|hrs?|hours?|min|mins|minutes?|s|secs?|seconds?)")


_LEAD_UNITS = {
    **dict.fromkeys(("d", "day", "days"), "days"),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), "hours"),
    **dict.fromkeys(("min", "mins", "minute", "minutes"), "minutes"),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), "seconds"),
}


def parse_duration(value: Any) -> Any:
    """'24h', '2d', '90min', a timedelta, or an int of hours -> a pandas Timedelta (the one
    parser of every `--lead-time`: predict's horizon, plot's selection)."""
    import pandas as pd

    try:
        if isinstance(value, (int, np.integer)):
            td = pd.Timedelta(hours=int(value))
        elif isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
            td = pd.Timedelta(hours=int(value))
        elif isinstance(value, str) and (m := _LEAD_RE.fullmatch(value.strip().lower())):
            td = pd.Timedelta(**{_LEAD_UNITS[m.group(2)]: float(m.group(1))})
        else:
            td = pd.Timedelta(value)
    except (ValueError, TypeError):
        raise UsageError(f"`lead_time`: cannot parse '{value}' (examples: 24h, 2d, 90min)") from None
    if pd.isna(td):
        raise UsageError(f"`lead_time`: cannot parse '{value}' (examples: 24h, 2d, 90min)")
    return td


def format_hours(hours: float) -> str:
    """A lead of `hours` for people: '6h', '1.5h'."""
    return f"{hours:g}h"


def step_label(steps: int, counted: tuple[int, str]) -> str:
    """`steps` counted steps of (size, unit) in words: "1 month", "24 months", "2 frames"."""
    n = int(steps) * counted[0]
    return f"{n} {counted[1] if n != 1 else counted[1].rstrip('s')}"


_CALENDAR_LEAD = re.compile(r"(\d+)\s*(m|mon|month|months|q|quarter|quarters|y|yr|year|years)")


def parse_calendar_lead(value: Any, months_per_step: int) -> int:
    """'3M', '2Y', '1Q', '6 months' -> number of calendar steps of `months_per_step` months."""
    m = _CALENDAR_LEAD.fullmatch(str(value).strip().lower())
    if m is None:
        raise UsageError(f"`lead_time` {value!r}: this model steps in calendar months; give months, quarters or "
                         "years (e.g. 3M, 1Q, 2Y)")
    months = int(m.group(1)) * {"m": 1, "q": 3, "y": 12}[m.group(2)[0]]
    if months < 1 or months % months_per_step:
        raise UsageError(f"`lead_time` {value}: must be a positive multiple of the model's step "
                         f"({months_per_step} month(s))")
    return months // months_per_step


def parse_lead_time(value: Any, step: np.timedelta64 | None) -> int:
    """'24h', '2d', '90min', a timedelta, or an int of hours -> number of model steps."""
    import pandas as pd

    if step is None:
        raise UsageError("`lead_time` needs a model with a time step; use `steps` instead")
    td = parse_duration(value)
    step_td = pd.Timedelta(step)
    n = td / step_td
    if td <= pd.Timedelta(0) or abs(n - round(n)) > 1e-9:
        raise UsageError(f"`lead_time` {value}: must be a positive multiple of the model's time step ({step_td})")
    return int(round(n))
