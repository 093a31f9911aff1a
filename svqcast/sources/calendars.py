"""The regular grid behind a user's time axis: fixed steps and calendar steps, gaps named.

`svqcast.sources.timeaxis` turns what xarray decoded into datetime64 (or refuses it); this module
answers the next question `prepare` has: is the axis regular, and at which step? Fixed
steps (minutes to days) are compared with a tolerance, so a float32 "days since" axis a
few milliseconds off still counts as hourly. Monthly, seasonal and yearly means have steps
whose length in seconds varies (28..31 days, 365/366 days), so they are recognised on the
calendar instead: consecutive stamps must be whole months apart and fall on about the same
day. A real gap is an error naming the first missing time; values are never re-timed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from svqcast.errors import DataError, UsageError

_FIXED_UNITS = {"s": 1, "min": 60, "h": 3600, "D": 86400}
_CAL_UNITS = {"M": 1, "Q": 3, "Y": 12}
_MONTH_SECONDS = 365.2425 * 86400 / 12
_DAY_SLACK = 3  # calendar stamps may wander this many days (mid-month means, leap years)


@dataclass(frozen=True)
class TimeStep:
    """A regular step: `seconds` (fixed) or `months` (calendar); `label` like "6h" or "1Y"."""

    label: str
    seconds: float | None = None
    months: int | None = None

    @property
    def nominal_seconds(self) -> float:
        """Seconds for a fixed step; the mean Gregorian length for a calendar step."""
        return float(self.seconds) if self.seconds is not None else float(self.months or 0) * _MONTH_SECONDS

    @property
    def is_calendar(self) -> bool:
        return self.months is not None


def parse_step(text: str) -> TimeStep:
    """`30min`, `1h`, `6h`, `1D`, `1M`, `3M`, `1Q`, `1Y` -> TimeStep (UsageError otherwise)."""
    m = re.fullmatch(r"\s*(\d+)?\s*(s|min|h|D|d|M|Q|Y|y)\s*", str(text))
    if not m or (m[1] is not None and int(m[1]) < 1):
        raise UsageError(f"`time_step` {text!r}: use a number and a unit: 30min, 1h, 6h, 1D, 1M, 1Q or 1Y")
    n = int(m[1] or 1)
    unit = {"d": "D", "y": "Y"}.get(m[2], m[2])
    if unit in _FIXED_UNITS:
        return TimeStep(f"{n}{unit}", seconds=float(n * _FIXED_UNITS[unit]))
    return TimeStep(f"{n}{unit}", months=n * _CAL_UNITS[unit])


def _label(seconds: float) -> str:
    for unit, size in (("D", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _show(t: np.datetime64) -> str:
    return str(np.datetime64(t).astype("datetime64[s]")).replace("T00:00:00", "")


def check_order(times: np.ndarray, what: str) -> None:
    """Strictly increasing, or a DataError naming the first offending pair."""
    d = np.diff(times.astype("datetime64[ns]").astype(np.int64))
    bad = np.flatnonzero(d <= 0)
    if bad.size:
        i = int(bad[0])
        kind = "duplicated" if d[i] == 0 else "not increasing"
        raise DataError(f"{what}: time axis {kind}: {_show(times[i + 1])} follows {_show(times[i])}; "
                        "sort the file by time and drop duplicates")


def infer_step(times: np.ndarray, what: str, given: TimeStep | None = None) -> TimeStep:
    """The axis' step (or check `given`), accepting small jitter; gaps are DataErrors."""
    times = np.asarray(times).astype("datetime64[ns]")
    check_order(times, what)
    if len(times) < 2:
        if given is None:
            raise DataError(f"{what}: a single time step; cannot infer the time step (give `time_step`)")
        return given
    step = given or _guess(times)
    if step.is_calendar:
        _check_calendar(times, step, what)
    else:
        _check_fixed(times, step, what)
    return step


def _guess(times: np.ndarray) -> TimeStep:
    secs: np.ndarray = np.diff(times.astype(np.int64)) / 1e9
    vals, counts = np.unique(np.round(secs, 0), return_counts=True)
    mode = float(vals[counts.argmax()])
    if mode >= 27 * 86400:  # months or longer: count calendar months
        months = np.diff(_month_index(times))
        mvals, mcounts = np.unique(months, return_counts=True)
        k = int(mvals[mcounts.argmax()])
        if k >= 1:
            label = f"{k // 12}Y" if k % 12 == 0 else (f"{k // 3}Q" if k == 3 else f"{k}M")
            return TimeStep(label, months=k)
    return TimeStep(_label(mode), seconds=mode)


def _month_index(times: np.ndarray) -> np.ndarray:
    return times.astype("datetime64[M]").astype(np.int64)


def _check_fixed(times: np.ndarray, step: TimeStep, what: str) -> None:
    assert step.seconds is not None
    ns = times.astype(np.int64) - times[0].astype(np.int64)
    step_ns = step.seconds * 1e9
    k = np.round(ns / step_ns)
    tol = max(1e9, 1e-3 * step_ns)  # a second, or 0.1 % of the step
    off = np.flatnonzero(np.abs(ns - k * step_ns) > tol)
    if off.size:
        i = int(off[0])
        raise DataError(f"{what}: {_show(times[i])} is off the {step.label} grid that starts at {_show(times[0])}; "
                        "resample to a regular step or give the right `time_step`")
    _gap(times, np.diff(k), lambda i: times[i] + np.timedelta64(int(step_ns), "ns"), step.label, what)  # noqa: B023


def _check_calendar(times: np.ndarray, step: TimeStep, what: str) -> None:
    assert step.months is not None
    months = _month_index(times)
    k = (months - months[0]) / step.months
    day = (times - times.astype("datetime64[M]")).astype("timedelta64[D]").astype(np.int64)
    off = np.flatnonzero((k != np.round(k)) | (np.abs(day - day[0]) > _DAY_SLACK + 13 * (step.months == 1)))
    if off.size:
        i = int(off[0])
        raise DataError(f"{what}: {_show(times[i])} is off the {step.label} calendar grid that starts at "
                        f"{_show(times[0])}; give the right `time_step`")
    first_month = times[0].astype("datetime64[M]")

    def missing(i: int) -> np.datetime64:
        months_on = (int(round(k[i])) + 1) * int(step.months or 0)
        return first_month + np.asarray(months_on).astype("timedelta64[M]")

    _gap(times, np.diff(np.round(k)), missing, step.label, what)


def _gap(times: np.ndarray, dk: np.ndarray, missing: Callable[[int], np.datetime64], label: str,
         what: str) -> None:
    bad = np.flatnonzero(dk != 1)
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{what}: gap in the {label} time axis: {_show(missing(i))} is missing "
                        f"(between {_show(times[i])} and {_show(times[i + 1])}); fill it or split the file")


def calendar_months(spec: object) -> int | None:
    """Months per step of a data spec with a calendar step (monthly/seasonal/yearly), else None."""
    extra = getattr(spec, "extra", None)
    if extra is None and isinstance(spec, dict):
        extra = spec.get("extra")
    if not isinstance(extra, dict) or not extra.get("calendar_step"):
        return None
    return parse_step(str(extra.get("time_step", ""))).months


def shift_months(times: np.ndarray, months: np.ndarray) -> np.ndarray:
    """`times` moved by whole months, keeping the day (clamped to the month's last day) and
    the time of day: 31 January + 1 month is 28/29 February."""
    t = np.asarray(times).astype("datetime64[ns]")
    days = t.astype("datetime64[D]")
    start = t.astype("datetime64[M]")
    day = days - start.astype("datetime64[D]")
    target = start + np.asarray(months).astype("timedelta64[M]")
    length = (target + np.timedelta64(1, "M")).astype("datetime64[D]") - target.astype("datetime64[D]")
    moved = target.astype("datetime64[D]") + np.minimum(day, length - np.timedelta64(1, "D"))
    return moved.astype("datetime64[ns]") + (t - days.astype("datetime64[ns]"))


def calendar_frames(times: np.ndarray, inits: np.ndarray, rel_in: np.ndarray, months: int,
                    src: str) -> np.ndarray:
    """(n_init, T_in) indices of the frames `rel_in` calendar steps before each init: frames
    are matched by month (monthly means stamped on the 15th or 16th are the same month)."""
    index = {int(m): i for i, m in enumerate(_month_index(np.asarray(times).astype("datetime64[ns]")))}
    base = _month_index(np.asarray(inits).astype("datetime64[ns]"))
    idx = np.empty((len(base), len(rel_in)), dtype=np.int64)
    for k, b in enumerate(base):
        for j, r in enumerate(rel_in):
            i = index.get(int(b + r * months))
            if i is None:
                want = np.datetime64(int(b + r * months), "M")
                raise DataError(f"{src}: too few time steps: the model needs {len(rel_in)} frames {months} "
                                f"month(s) apart ending at {_show(inits[k])}, but {want} is missing")
            idx[k, j] = i
    return idx
