"""One validation of time axes for every command that reads user data (predict, score, prepare).

A time axis that is not a plain calendar axis used to slip past every time check: cftime
calendars and unitless numbers were taken for frame sequences, duplicated timestamps were
silently resolved to the later copy, and a float32 "days since" axis decoded a few
milliseconds off its true values, so an existing time was reported as missing. This module
turns whatever xarray decoded into one of two honest forms, or refuses with a one-line fix:

* ``datetime64[ns]`` (calendar data): standard/proleptic Gregorian as is; ``noleap``/
  ``365_day`` converted (every such date exists in the Gregorian calendar; a leap day is then
  simply absent and reported as missing if a window needs it); ``all_leap``/``366_day``
  converted only when no 29 February falls in a non-leap year; ``360_day``, ``julian`` and
  other calendars refused. Values decoded from a float encoding are rounded to the
  resolution that encoding can actually carry.
* ``int64`` frame indices: only when the caller allows frames (a model trained on frames, a
  video dataset); numeric time without units is refused otherwise.
"""

from __future__ import annotations

import calendar as _cal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from svqcast.errors import DataError

# Calendars whose dates all exist in the proleptic Gregorian calendar (after conversion).
_GREGORIAN = {"standard", "gregorian", "proleptic_gregorian"}
_NOLEAP = {"noleap", "365_day"}
_ALLLEAP = {"all_leap", "366_day"}
_ROUNDINGS = (  # candidate resolutions, finest first
    np.timedelta64(1, "ms"), np.timedelta64(1, "s"), np.timedelta64(1, "m"), np.timedelta64(1, "h"),
    np.timedelta64(1, "D"),
)
_UNIT_SECONDS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0, "week": 604800.0}

FIX_CALENDAR = (
    "convert it to a standard calendar first, e.g. ds = ds.convert_calendar('standard', "
    "align_on='year') in xarray (`cdo setcalendar` only relabels the calendar: the dates would shift)"
)


@dataclass(frozen=True)
class TimeAxis:
    """A validated time axis: ``values`` is datetime64[ns] (``is_datetime``) or int64 frames."""

    values: np.ndarray
    is_datetime: bool
    notes: tuple[str, ...] = field(default_factory=tuple)


def _calendar_of(values: np.ndarray) -> str | None:
    """The cftime calendar of an object array of cftime dates, or None for anything else."""
    if values.dtype != object or values.size == 0:
        return None
    cal = getattr(values.flat[0], "calendar", None)
    return str(cal).lower() if cal else None


def _monthly_positions(values: np.ndarray) -> bool:
    """At most one stamp per calendar month, in order: monthly, seasonal or yearly data, whose
    month and year positions are exact in any calendar."""
    months = [d.year * 12 + d.month for d in values.flat]
    return len(months) > 1 and all(b > a for a, b in zip(months, months[1:], strict=False))


def _by_month(values: np.ndarray, calendar: str, what: str) -> tuple[np.ndarray, str]:
    """Monthly-or-coarser stamps of any calendar placed on the same year, month and time; a day the
    Gregorian month lacks (30 February of a 360-day year) becomes that month's last day."""
    out = []
    for d in values.flat:
        day = min(d.day, _cal.monthrange(d.year, d.month)[1])
        out.append(np.datetime64(f"{d.year:04d}-{d.month:02d}-{day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}",
                                 "ns"))
    note = (f"{what}: '{calendar}' calendar read by year and month (monthly or coarser stamps are exact in any "
            "calendar; days beyond a Gregorian month's length moved to its last day)")
    return np.array(out, dtype="datetime64[ns]").reshape(values.shape), note


def _from_cftime(values: np.ndarray, calendar: str, what: str) -> tuple[np.ndarray, str | None]:
    """cftime dates -> datetime64[ns] where every date exists in the Gregorian calendar; monthly,
    seasonal and yearly stamps of any calendar by their year and month."""
    years = [d.year for d in values.flat]
    if years and (min(years) < NS_YEARS[0] or max(years) > NS_YEARS[1]):
        raise DataError(_outside_ns_range(what, min(years), max(years)))
    if calendar not in _GREGORIAN and _monthly_positions(values):
        return _by_month(values, calendar, what)
    if calendar in _ALLLEAP:
        bad = [d for d in values.flat if d.month == 2 and d.day == 29 and not _is_leap(d.year)]
        if bad:
            raise DataError(
                f"{what}: calendar '{calendar}' has dates that do not exist in the Gregorian calendar "
                f"(first: {bad[0].strftime('%Y-%m-%d')}); {FIX_CALENDAR}"
            )
    elif calendar not in _GREGORIAN | _NOLEAP:
        raise DataError(
            f"{what}: calendar '{calendar}' cannot be converted to real dates without shifting them "
            f"(its months and years differ from the Gregorian calendar, and the steps are shorter than "
            f"a month); {FIX_CALENDAR}"
        )
    try:
        out = np.array(
            [np.datetime64(d.strftime("%Y-%m-%dT%H:%M:%S"), "ns") + np.timedelta64(int(d.microsecond), "us")
             for d in values.flat],
            dtype="datetime64[ns]",
        ).reshape(values.shape)
    except (ValueError, OverflowError):
        raise DataError(
            f"{what}: dates outside 1678..2261 cannot be represented; shift the time axis to real dates"
        ) from None
    note = None if calendar in _GREGORIAN else f"{what}: '{calendar}' calendar converted to the Gregorian calendar"
    return out, note


NS_YEARS = (1678, 2261)  # whole years datetime64[ns] holds (it spans 1677-09-21 .. 2262-04-11)


def _outside_ns_range(what: str, lo: int, hi: int) -> str:
    return (f"{what}: dates from year {lo} to {hi} lie outside {NS_YEARS[0]}..{NS_YEARS[1]}, the years "
            "svqcast can represent; shift the time axis (e.g. cdo shifttime) or use a frame index")


def _check_ns_range(values: np.ndarray, what: str) -> None:
    """A datetime64 axis at a coarser unit may hold dates that nanoseconds cannot: casting would
    wrap them silently (year 2300 becomes 1715), so refuse them here."""
    valid = values[~np.isnat(values)]
    if valid.size == 0 or np.datetime_data(values.dtype)[0] == "ns":
        return
    years = valid.astype("datetime64[Y]").astype(np.int64) + 1970
    if years.min() < NS_YEARS[0] or years.max() > NS_YEARS[1]:
        raise DataError(_outside_ns_range(what, int(years.min()), int(years.max())))


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _encoding_resolution(encoding: Mapping[str, Any], values: np.ndarray) -> np.timedelta64 | None:
    """The coarsest resolution a float-encoded time axis can carry, or None if not float-encoded.

    A float32 "days since" axis holds about 7 significant digits: hourly times then decode a
    few milliseconds (or, far from the reference date, minutes) away from the hour.
    """
    dtype = np.dtype(encoding.get("dtype", "f8")) if encoding.get("dtype") is not None else None
    units = str(encoding.get("units", ""))
    if dtype is None or dtype.kind != "f" or " since " not in units:
        return None
    unit = units.split(" since ")[0].strip().lower().rstrip("s")
    scale = _UNIT_SECONDS.get(unit)
    if scale is None or values.size == 0:
        return None
    span = float((values.max() - values.min()) / np.timedelta64(1, "s")) / scale
    magnitude = max(span, _offset_from_reference(units, values, scale), 1.0)
    ulp_seconds = float(np.spacing(dtype.type(magnitude))) * scale
    for res in _ROUNDINGS:
        if res / np.timedelta64(1, "s") >= 4 * ulp_seconds:
            return res
    return _ROUNDINGS[-1]


def _offset_from_reference(units: str, values: np.ndarray, scale: float) -> float:
    """Largest raw encoded number (in the encoding's units), from the reference date in `units`."""
    import pandas as pd

    try:
        ref = pd.Timestamp(units.split(" since ")[1].strip()).tz_localize(None).to_datetime64()
    except (ValueError, TypeError, IndexError):
        return 0.0
    far = np.abs(values.astype("datetime64[ns]") - np.datetime64(ref, "ns")).max()
    return float(far / np.timedelta64(1, "s")) / scale


def _round_to(values: np.ndarray, res: np.timedelta64) -> np.ndarray:
    ns = values.astype("datetime64[ns]").astype(np.int64)
    step = int(res / np.timedelta64(1, "ns"))
    return (np.floor_divide(ns + step // 2, step) * step).astype("datetime64[ns]")


def _check_duplicates(values: np.ndarray, what: str) -> None:
    uniq, counts = np.unique(values, return_counts=True)
    if uniq.size == values.size:
        return
    dup = uniq[counts > 1]
    # name the first duplicate in file order, not in sorted order
    first = values[np.flatnonzero(np.isin(values, dup))[0]]
    shown = str(first)[:19] if np.issubdtype(values.dtype, np.datetime64) else str(first)
    raise DataError(
        f"{what}: time {shown} appears more than once ({int((counts > 1).sum())} duplicated times); "
        "drop the duplicates first, e.g. ds = ds.drop_duplicates('time')"
    )


def validate_time_axis(
    values: Any,
    *,
    what: str = "time",
    attrs: Mapping[str, Any] | None = None,
    encoding: Mapping[str, Any] | None = None,
    allow_frames: bool = False,
) -> TimeAxis:
    """Validate one decoded time coordinate (what xarray gives) and return it in an honest form.

    `what` names the axis in messages (e.g. "input.nc: time"); `attrs`/`encoding` are the
    coordinate's (xarray keeps the units in `encoding` once decoded); `allow_frames` accepts
    integer frame indices (models trained on frames, video data). Raises DataError otherwise.
    """
    values = np.asarray(values)
    attrs = dict(attrs or {})
    encoding = dict(encoding or {})
    notes: list[str] = []
    calendar = _calendar_of(values)
    if calendar is not None:
        values, note = _from_cftime(values, calendar, what)
        if note:
            notes.append(note)
    if np.issubdtype(values.dtype, np.datetime64):
        _check_ns_range(values, what)
        values = values.astype("datetime64[ns]")
        if np.isnat(values).any():
            raise DataError(f"{what}: the time axis has missing (NaT) values; drop or fill those times")
        res = _encoding_resolution(encoding, values) or np.timedelta64(1, "ms")
        rounded = _round_to(values, res)
        if np.any(rounded != values) and res > np.timedelta64(1, "ms"):
            stored = np.dtype(encoding["dtype"]).name
            notes.append(f"{what}: times stored as {stored} rounded to the nearest {_res_name(res)}")
        _check_duplicates(rounded, what)
        return TimeAxis(rounded, True, tuple(notes))
    return _numeric_axis(values, what, attrs, allow_frames)


def _numeric_axis(values: np.ndarray, what: str, attrs: Mapping[str, Any], allow_frames: bool) -> TimeAxis:
    if values.dtype == object or not np.issubdtype(values.dtype, np.number):
        raise DataError(f"{what}: time values of type {values.dtype} are not dates; give it CF units")
    units = str(attrs.get("units", "")).strip()
    if " since " in units:
        raise DataError(
            f"{what}: time units '{units}' could not be decoded into dates; fix the units attribute "
            "(e.g. 'hours since 2019-01-01 00:00:00')"
        )
    if not allow_frames:
        raise DataError(
            f"{what}: the time axis is numeric without date units, but the model needs dates; set CF "
            "units on it, e.g. ds['time'].attrs['units'] = 'hours since 2019-01-01 00:00:00'"
        )
    if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
        raise DataError(f"{what}: frame indices must be whole numbers; renumber the time axis 0, 1, 2, ...")
    frames = values.astype(np.int64)
    _check_duplicates(frames, what)
    return TimeAxis(frames, False, ())


def _res_name(res: np.timedelta64) -> str:
    return {"ms": "millisecond", "s": "second", "m": "minute", "h": "hour", "D": "day"}[np.datetime_data(res)[0]]


def time_axis_of(obj: Any, dim: str, *, source: str, allow_frames: bool = False) -> TimeAxis:
    """`validate_time_axis` for dimension `dim` of an xarray object; frame indices 0..n-1 when
    `dim` has no coordinate (allowed only with `allow_frames`)."""
    what = f"{source}: {dim}"
    named = _time_named_coord(obj, dim)
    if named is not None:  # NEMO: a unit-less `time_counter` beside `time_centered` (standard_name time)
        coord = obj.coords[named]
        return validate_time_axis(coord.values, what=f"{source}: {named}", attrs=coord.attrs,
                                  encoding=coord.encoding, allow_frames=allow_frames)
    if dim not in obj.coords:
        if not allow_frames:
            raise DataError(
                f"{what}: the time dimension has no coordinate values, but the model needs dates; add "
                f"a time coordinate with CF units (e.g. ds = ds.assign_coords({dim}=times))"
            )
        return TimeAxis(np.arange(obj.sizes[dim], dtype=np.int64), False, ())
    coord = obj[dim]
    return validate_time_axis(
        coord.values, what=what, attrs=coord.attrs, encoding=coord.encoding, allow_frames=allow_frames
    )


def _time_named_coord(obj: Any, dim: str) -> str | None:
    """Another coordinate along `dim` that says it is the time (standard_name: time) when the
    dimension's own coordinate does not: CF's answer to "which of these is the time axis"."""
    own = obj.coords.get(dim) if hasattr(obj, "coords") else None
    if own is not None and (own.attrs.get("standard_name") == "time" or np.issubdtype(own.dtype, np.datetime64)
                            or own.dtype == object):
        return None
    for name, coord in getattr(obj, "coords", {}).items():
        if name != dim and tuple(coord.dims) == (dim,) and coord.attrs.get("standard_name") == "time":
            return str(name)
    return None


def iso_duration(seconds: float) -> str:
    """ISO-8601 duration of a lead time: 21600 -> 'PT6H', 90000 -> 'P1DT1H', 0 -> 'PT0S'."""
    total = round(float(seconds), 6)
    sign = "-" if total < 0 else ""
    total = abs(total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    out = f"{sign}P" + (f"{int(days)}D" if days else "")
    clock = (f"{int(hours)}H" if hours else "") + (f"{int(minutes)}M" if minutes else "")
    if secs:
        clock += f"{int(secs)}S" if float(secs).is_integer() else f"{secs:g}S"
    if clock or not days:
        out += "T" + (clock or "0S")
    return out
__all__ = ["FIX_CALENDAR", "TimeAxis", "iso_duration", "time_axis_of", "validate_time_axis"]
