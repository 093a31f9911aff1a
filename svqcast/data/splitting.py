"""Chronological train/val/test splits of a user's time axis, and the sample window.

`--split train=1979:2015` takes dates (a year, a month `2019-03`, a day `2019-03-23` or a
full time; both ends inclusive) for data with a calendar axis and frame indices (`0:700`,
Python-style: the end is excluded) for frame data. Without `--split` the axis is cut 70 /
15 / 15 in time order. Every split is written as its own store, so a window never
straddles two splits; a split too short for one window is refused, naming how many steps it
has and how many a window needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from svqcast.errors import DataError, UsageError
from svqcast.sources.calendars import TimeStep

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.70, 0.15, 0.15)


@dataclass(frozen=True)
class Window:
    t_in: int
    t_out: int

    @property
    def span(self) -> int:
        return self.t_in + self.t_out

    @property
    def idx_in(self) -> list[int]:
        return list(range(-(self.t_in - 1), 1))

    @property
    def idx_out(self) -> list[int]:
        return list(range(1, self.t_out + 1))


def default_windows(kind: str, t_in: int | None, t_out: int | None) -> Window:
    """12 -> 12 steps for fields (the WeatherBench-S choice), 10 -> 10 frames for video (KTH)."""
    base = 10 if kind == "video" else 12
    n_in, n_out = base if t_in is None else int(t_in), base if t_out is None else int(t_out)
    if n_in < 1 or n_out < 1:
        raise UsageError("`t_in` and `t_out` must be at least 1")
    return Window(n_in, n_out)


def split_ranges(times: np.ndarray, items: list[str] | None, window: Window,
                 step: TimeStep | None) -> dict[str, tuple[int, int]]:
    """split -> [start, stop) frame indices; every split holds at least one window."""
    n = len(times)
    if items:
        ranges = _parse(times, items)
    else:
        a = int(n * DEFAULT_FRACTIONS[0])
        b = a + int(n * DEFAULT_FRACTIONS[1])
        ranges = {"train": (0, a), "val": (a, b), "test": (b, n)}
    for split, (a, b) in ranges.items():
        if b - a < window.span:
            how = "`split`" if items else "a longer file (default split 70/15/15) or `split`"
            raise DataError(
                f"split {split!r} has {b - a} time steps but one window needs {window.span} "
                f"(`t_in` {window.t_in} + `t_out` {window.t_out}); use {how}, or shorter `t_in`/`t_out`")
    return ranges


def _parse(times: np.ndarray, items: list[str]) -> dict[str, tuple[int, int]]:
    is_dt = np.issubdtype(times.dtype, np.datetime64)
    out: dict[str, tuple[int, int]] = {}
    for item in items:
        split, _, rng = item.partition("=")
        lo, sep, hi = _bounds(rng)
        if split not in SPLITS or not sep or not lo or not hi:
            raise UsageError(f"`split` {item!r}: use SPLIT=A:B (or A..B, for bounds with a time of day) "
                             "with SPLIT one of train, val, test")
        if split in out:
            raise UsageError(f"`split` {split} given twice")
        if is_dt:
            start, stop = _date(lo, item, end=False), _date(hi, item, end=True)
            a, b = int(np.searchsorted(times, start, "left")), int(np.searchsorted(times, stop, "left"))
        else:
            a, b = _frame_bounds(lo, hi, item, len(times))
        if b <= a:
            raise UsageError(f"`split` {item!r}: selects no time step of the input")
        out[split] = (a, b)
    missing = [s for s in SPLITS if s not in out]
    if missing:
        raise UsageError(f"`split`: give all of train, val and test (missing: {', '.join(missing)})")
    order = sorted(out.values())
    if any(p[1] > q[0] for p, q in zip(order, order[1:], strict=False)):
        raise UsageError("`split`: the splits overlap; give disjoint ranges")
    return {s: out[s] for s in SPLITS}


def _bounds(rng: str) -> tuple[str, str, str]:
    """(low, separator, high): `A..B` when given (times of day hold ':'), else `A:B`; a ':' that
    splits `2019-03-01T06:00:2019-03-02` is the one between the two dates."""
    if ".." in rng:
        return rng.partition("..")
    dated = re.fullmatch(r"(\d{4}-\d{2}-\d{2}[T ]\d{2}(?::\d{2}){0,2}):(.+)", rng)
    if dated:
        return dated.group(1), ":", dated.group(2)
    return rng.partition(":")


def _frame_bounds(lo: str, hi: str, item: str, n: int) -> tuple[int, int]:
    """Frame indices A:B (B exclusive) within 0..n; negative or beyond the data are refused, never clamped."""
    try:
        a, b = int(lo), int(hi)
    except ValueError:
        raise UsageError(f"`split` {item!r}: frame data splits by frame index, e.g. train=0:700") from None
    if a < 0 or b < 0 or a > n or b > n:
        raise UsageError(f"`split` {item!r}: frame indices must lie in 0..{n} (the input has {n} frames)")
    return a, b


def _date(text: str, item: str, end: bool) -> np.datetime64:
    """A split bound as a time; an inclusive end becomes the start of the next period."""
    text = text.strip()
    try:
        if re.fullmatch(r"\d{4}", text):
            t, unit = np.datetime64(text, "Y"), "Y"
        elif re.fullmatch(r"\d{4}-\d{2}", text):
            t, unit = np.datetime64(text, "M"), "M"
        elif re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            t, unit = np.datetime64(text, "D"), "D"
        else:
            t, unit = np.datetime64(text.replace(" ", "T"), "s"), "s"
    except ValueError:
        raise UsageError(f"`split` {item!r}: {text!r} is not a year, month, day or time") from None
    stop = np.asarray(t) + np.asarray(1 if end else 0).astype(f"timedelta64[{unit}]")
    return np.datetime64(stop.astype("datetime64[ns]"))
