"""Validate a user's input against a model's data spec, before any compute (docs/predict.md).

Everything a user can get wrong about an input file is checked here against the `DataSpec`
stored in the model's checkpoint:

* the file: any format `svqcast.sources` opens; unreadable -> DataError;
* variables: the model's channel names, their aliases (`svqcast.sources.lexicon`) or `--var-map`;
* grid: latitude ascending or descending, longitude 0..360 or -180..180, coordinate names
  lat/latitude and lon/longitude; a larger grid that contains the model's grid is cut to it;
* time: the axis is validated by `svqcast.sources.timeaxis` (calendars, unitless numbers,
  duplicates, float encodings); the frames the model needs (its `idx_in` at its time step) must exist;
* units: converted to the model's units where that is unambiguous (K, degC, degF), refused
  otherwise; NaNs are refused.

The result (`PreparedInput`) holds the frames in the model's physical units on the model's
grid, plus human-readable notes of everything that was adapted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from svqcast.data.spec import DataSpec, channel_levels, channel_names, frames_allowed, relative_offsets, time_step
from svqcast.errors import DataError, MismatchError, UsageError
from svqcast.sources.calendars import calendar_frames, calendar_months
from svqcast.sources.cf import mask_invalid
from svqcast.sources.coords import apply_coords, guess
from svqcast.sources.grid import spatial_selection, time_dims
from svqcast.sources.leadtime import format_step
from svqcast.sources.levels import pick_level
from svqcast.sources.lexicon import parse_var_map, resolve_variables
from svqcast.sources.opener import open_dataset
from svqcast.sources.timeaxis import time_axis_of
from svqcast.units import convert_units, temperature_kind


@dataclass
class PreparedInput:
    """Validated input frames: `frames` is (n_init, T_in, C, H, W) float32 in model units."""

    frames: np.ndarray
    init_times: np.ndarray
    source: str
    variables: dict[str, str]  # model channel -> input variable used
    notes: list[str] = field(default_factory=list)
    time_coord: bool = True  # False: init_times are frame indices (no calendar)
    metadata: dict[str, Any] = field(default_factory=dict)  # what the forecast keeps of the input (input_metadata)

    def report(self) -> dict[str, Any]:
        return {
            "input": self.source,
            "ok": True,
            "variables": self.variables,
            "init_times": [str(t)[:19] if self.time_coord else int(t) for t in self.init_times],
            "frames_per_init": int(self.frames.shape[1]),
            "grid": list(self.frames.shape[-2:]),
            "notes": list(self.notes),
        }


def _to_datetime64(value: Any) -> np.datetime64:
    import pandas as pd

    try:
        ts = pd.Timestamp(value)
        if ts.tzinfo is not None:
            ts = ts.tz_convert("UTC").tz_localize(None)
        return np.datetime64(ts.to_datetime64(), "ns")
    except Exception:
        raise UsageError(f"`init_time`: cannot parse '{value}' as a date-time (e.g. 2019-03-29T00:00)") from None


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]


def _missing_frame(times: np.ndarray, t0: np.datetime64, want: np.datetime64, step: np.timedelta64,
                   rel_in: np.ndarray, explicit: bool, pos: Mapping[int, int], src: str) -> DataError:
    """The most useful explanation of why frame `want` (needed for init `t0`) is absent."""
    step_ns = step.astype("timedelta64[ns]")
    diffs = np.diff(np.sort(times))
    in_step = np.median(diffs) if diffs.size else None
    if in_step is not None and in_step > step_ns:
        return MismatchError(
            f"{src}: time step mismatch: the input is {format_step(in_step.astype('timedelta64[s]'))}, "
            f"the model needs {format_step(step)}; resample the input"
        )
    if explicit and int(t0.astype(np.int64)) not in pos:
        return DataError(
            f"{src}: init time {str(t0)[:19]} is not in the input (it covers "
            f"{str(times.min())[:19]} .. {str(times.max())[:19]})"
        )
    return DataError(
        f"{src}: too few time steps: init {str(t0)[:19]} needs {rel_in.size} frames "
        f"{format_step(step)} apart back to {str(t0 + rel_in.min() * step_ns)[:19]}, "
        f"but {str(want)[:19]} is missing"
    )


def _datetime_frames(times: np.ndarray, init_time: Any, rel_in: np.ndarray, step: np.timedelta64 | None,
                     src: str) -> tuple[np.ndarray, np.ndarray]:
    """(init times, (n_init, T_in) indices into `times`) for a calendar time axis."""
    if step is None:
        raise DataError("the model's data spec has no time_step_seconds, but the input has calendar times")
    if init_time is None:
        inits = np.array([times.max()])
    else:
        inits = np.array([_to_datetime64(t) for t in _as_list(init_time)], dtype="datetime64[ns]")
        _refuse_repeats(inits)
    pos = {int(t): i for i, t in enumerate(times.astype(np.int64))}  # ns since epoch -> index
    step_ns = step.astype("timedelta64[ns]")
    idx = np.empty((inits.size, rel_in.size), dtype=np.int64)
    for k, t0 in enumerate(inits):
        for j, r in enumerate(rel_in):
            want = (t0 + r * step_ns).astype("datetime64[ns]")
            i = pos.get(int(want.astype(np.int64)))
            if i is None:
                raise _missing_frame(times, t0, want, step, rel_in, init_time is not None, pos, src)
            idx[k, j] = i
    return inits, idx


def _refuse_repeats(inits: np.ndarray) -> None:
    """The same initialisation twice would write duplicated times into the forecast."""
    values, counts = np.unique(inits, return_counts=True)
    if np.any(counts > 1):
        first = values[counts > 1][0]
        shown = str(first)[:19] if np.issubdtype(inits.dtype, np.datetime64) else str(first)
        raise UsageError(f"`init_time` {shown} is given more than once; give each initialisation once")


def _index_frames(n_time: int, init_time: Any, rel_in: np.ndarray, src: str) -> tuple[np.ndarray, np.ndarray]:
    """(init frame indices, (n_init, T_in) indices) for a frame-indexed input."""
    if init_time is None:
        inits = np.array([n_time - 1])
    else:
        try:
            inits = np.array([int(t) for t in _as_list(init_time)])
        except (TypeError, ValueError):
            raise UsageError("`init_time`: this input has no calendar time axis; give a frame index") from None
        _refuse_repeats(inits)
    idx = inits[:, None] + rel_in[None, :]
    if idx.min() < 0 or idx.max() >= n_time:
        raise DataError(f"{src}: too few time steps: the model needs {rel_in.size} frames before the init frame")
    return inits, idx


def _open_source(source: Any, spec: DataSpec, coords: Mapping[str, str] | None = None) -> tuple[Any, str]:
    """(Dataset, label for messages) from a path, a Dataset or a DataArray."""
    import xarray as xr

    if isinstance(source, (str, os.PathLike)):
        return open_dataset(source, coords), str(source)
    if isinstance(source, xr.DataArray):
        name = source.name or (channel_names(spec) or ["var"])[0]
        return apply_coords(source.to_dataset(name=name), coords or {}, "input"), f"DataArray '{source.name}'"
    if isinstance(source, xr.Dataset):
        return apply_coords(source, coords or {}, "input dataset"), "input dataset"
    raise UsageError(f"predict expects a file path or an xarray Dataset/DataArray, got {type(source).__name__}")


def squeeze_extra(da: Any, keep: Sequence[str], name: str, src: str) -> Any:
    """Drop size-1 dimensions other than time/y/x; refuse larger ones (the user must choose)."""
    for d in [d for d in da.dims if d not in keep]:
        if da.sizes[d] != 1:
            raise DataError(
                f"{src}: variable '{name}' has an extra dimension '{d}' of size {da.sizes[d]}; "
                f"select one {d} first (e.g. ds.sel({d}=...))"
            )
        da = da.isel({d: 0})
    return da


@dataclass
class _Selection:
    """Which frames to read: init labels, (n_init, T_in) indices, the time axis, its notes."""

    inits: np.ndarray
    idx: np.ndarray
    times: np.ndarray
    is_datetime: bool
    notes: tuple[str, ...]


def _select_frames(da: Any, tdim: str, spec: DataSpec, init_time: Any, src: str) -> _Selection:
    rel_in, _ = relative_offsets(spec)
    step = time_step(spec)
    n_time = da.sizes[tdim]
    axis = time_axis_of(da, tdim, source=src, allow_frames=frames_allowed(spec))
    _refuse_other_step(axis.values, step, calendar_months(spec), src)
    if n_time < rel_in.size:
        need = f"{rel_in.size} frames" + (f" {format_step(step)} apart" if step is not None else "")
        raise DataError(f"{src}: too few time steps: the model needs {need}, the input has {n_time}")
    months = calendar_months(spec)
    if axis.is_datetime and months:  # monthly/seasonal/yearly steps: match frames on the calendar
        inits = np.array([axis.values.max()] if init_time is None else
                         [_to_datetime64(t) for t in _as_list(init_time)], dtype="datetime64[ns]")
        _refuse_unstamped(inits, axis.values, src)
        idx = calendar_frames(axis.values, inits, rel_in, months, src)
    elif axis.is_datetime:
        inits, idx = _datetime_frames(axis.values, init_time, rel_in, step, src)
    else:
        inits, idx = _index_frames(n_time, init_time, rel_in, src)
    return _Selection(inits, idx, axis.values, axis.is_datetime, axis.notes)


def _refuse_unstamped(inits: np.ndarray, times: np.ndarray, src: str) -> None:
    """With calendar steps an initialisation must be one of the input's own stamps: its day of
    month and time of day place every valid time of the forecast."""
    stamps = np.asarray(times).astype("datetime64[ns]")
    for t in inits:
        if t not in stamps:
            nearest = stamps[int(np.argmin(np.abs((stamps - t).astype(np.int64))))]
            raise UsageError(f"`init_time` {str(t)[:19]} is not a time of the input; the nearest is "
                             f"{str(nearest)[:19]} (with calendar steps an initialisation is one of its stamps)")


def _refuse_other_step(times: np.ndarray, step: np.timedelta64 | None, months: int | None, src: str) -> None:
    """An input at another time step is named as such first (not as "too few frames"), because
    that is what the user has to fix."""
    if step is None or months or times.size < 2 or not np.issubdtype(times.dtype, np.datetime64):
        return
    spacing = np.median(np.diff(np.sort(times))).astype("timedelta64[s]")
    if spacing > step:  # a finer input is fine: the model's frames are picked from it
        raise MismatchError(f"{src}: time step mismatch: the input's times are {format_step(spacing)} apart; "
                        f"the model needs {format_step(step)}; resample the input")


def _read_frames(da: Any, tdim: str, sel: Mapping[str, Any], dims: tuple[str, str], idx: np.ndarray,
                 name: str, src: str) -> np.ndarray:
    """(n_init, T_in, H, W) float32 values of `da` at the selected frames and grid points."""
    import xarray as xr

    try:
        sub = da.isel({tdim: xr.DataArray(idx.reshape(-1), dims="_frame"), **sel})
        values = np.asarray(sub.transpose("_frame", *dims).values, dtype=np.float32)
    except Exception as exc:
        raise DataError(f"{src}: cannot read variable '{name}' ({str(exc)[:160]}); is the file complete?") from None
    return mask_invalid(values, da).reshape(idx.shape + values.shape[1:])


def _checked_units(values: np.ndarray, da: Any, unit: str, name: str, sel: _Selection, src: str,
                   notes: list[str], valid: np.ndarray | None) -> np.ndarray:
    """Refuse NaNs the model's mask does not explain, convert units, refuse implausible temperatures."""
    holes = np.isnan(values) if valid is None else np.isnan(values) & valid
    n_nan = int(holes.sum())
    if n_nan:
        bad = np.argwhere(holes)[0]
        when = str(sel.times[sel.idx[bad[0], bad[1]]])[:19]
        where = "" if valid is None else " at cells where the model's data holds values"
        raise DataError(
            f"{src}: variable '{name}' has {n_nan} missing (NaN) values in the input frames{where} "
            f"(first at {when}, cell row {bad[2]}, column {bad[3]}); fill or drop them before forecasting"
        )
    src_units = da.attrs.get("units")
    values, note = convert_units(values, src_units, unit, name)
    if note:
        notes.append(note)
    if temperature_kind(unit) == "K" and np.isfinite(values).any():
        lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
        if lo < 150.0 or hi > 350.0:
            raise DataError(
                f"{src}: variable '{name}' ranges {lo:.1f}..{hi:.1f} after conversion to K, which "
                f"is not a plausible air temperature; check its 'units' attribute ('{src_units}')"
            )
    return values


def _channel(ds: Any, name: str, spec: DataSpec, unit: str, init_time: Any, src: str,
             notes: list[str], grid_notes: bool, level: float | None = None,
             valid: np.ndarray | None = None) -> tuple[np.ndarray, _Selection]:
    """One model channel: validated (n_init, T_in, H, W) frames in model units (`level`: the
    channel's level of a variable on levels; `valid`: its static mask, where NaN is expected)."""
    da = pick_level(ds, ds[name], level, name, src) if level is not None else ds[name]
    tdims = time_dims(da)
    if not tdims:
        t_in = relative_offsets(spec)[0].size
        raise DataError(f"{src}: variable '{name}' has no time dimension; the model needs {t_in} input frames")
    tdim = tdims[0]
    dims, coords = list(spec.dims), spec.coords
    isel, (ydim, xdim) = spatial_selection(ds, da, dims, coords, src, notes if grid_notes else [])
    da = squeeze_extra(da, (tdim, ydim, xdim), name, src)
    sel = _select_frames(da, tdim, spec, init_time, src)
    notes.extend(sel.notes)
    values = _read_frames(da, tdim, isel, (ydim, xdim), sel.idx, name, src)
    return _checked_units(values, da, unit, name, sel, src, notes, valid), sel


def prepare_input(
    source: Any,
    spec: DataSpec,
    *,
    init_time: Any = None,
    var_map: Sequence[str] | Mapping[str, str] | None = None,
    coords: Mapping[str, str] | None = None,
) -> PreparedInput:
    """Validate `source` (path, xarray.Dataset or DataArray) against `spec`; load model-ready frames.

    `init_time`: None (the last input time), one time, or a list of times; each needs the
    model's `T_in` frames at its time step ending at that time.
    """
    ds, src = _open_source(source, spec, coords)
    channels = channel_names(spec)
    if not channels:
        raise DataError("the model's data spec lists no variables; re-export the checkpoint")
    units = list(spec.units)
    var_level = channel_levels(spec)
    wanted = list(dict.fromkeys(v for v, _ in var_level))
    resolved = resolve_variables(ds, wanted, parse_var_map(var_map), src)
    notes = [f"model variable '{ch}' read from input variable '{name}'" for ch, name in resolved.items() if name != ch]
    valid = spec.valid_mask()
    per_channel: list[np.ndarray] = []
    sel: _Selection | None = None
    for ci, (var, level) in enumerate(var_level):
        values, sel = _channel(ds, resolved[var], spec, units[ci], init_time, src, notes, grid_notes=ci == 0,
                               level=level, valid=None if valid is None else valid[ci])
        per_channel.append(values)
    assert sel is not None
    return PreparedInput(
        frames=np.stack(per_channel, axis=2).astype(np.float32),  # (n_init, T_in, C, H, W)
        init_times=sel.inits,
        source=src,
        variables=resolved,
        notes=list(dict.fromkeys(notes)),
        time_coord=sel.is_datetime,
        metadata=input_metadata(ds, resolved),
    )


def select_inits(source: Any, spec: DataSpec, *, init_time: Any,
                 var_map: Sequence[str] | Mapping[str, str] | None = None,
                 coords: Mapping[str, str] | None = None) -> np.ndarray:
    """The initialisations `init_time` names, each checked to have its input frames, reading only
    the time axis: the up-front check of a long run that reads its frames batch by batch."""
    ds, src = _open_source(source, spec, coords)
    var, level = channel_levels(spec)[0]
    name = resolve_variables(ds, [var], parse_var_map(var_map), src)[var]
    da = pick_level(ds, ds[name], level, name, src) if level is not None else ds[name]
    tdims = time_dims(da)
    if not tdims:
        raise DataError(f"{src}: variable '{name}' has no time dimension; the model needs input frames")
    return _select_frames(da, tdims[0], spec, init_time, src).inits


def input_metadata(ds: Any, resolved: Mapping[str, str]) -> dict[str, Any]:
    """What a forecast keeps of its input: each variable's standard and long name, the names the
    input gives latitude and longitude, and its scalar coordinates (a 2 m `height`)."""
    variables = {ch: {k: str(ds[name].attrs[k]) for k in ("standard_name", "long_name") if k in ds[name].attrs}
                 for ch, name in resolved.items()}
    grid = {role: name for role in ("lat", "lon") if (name := guess(ds, role)) is not None and name != role}
    scalars = {str(n): (c.values.item(), dict(c.attrs)) for n, c in ds.coords.items()
               if c.ndim == 0 and str(n) not in ("time", "valid_time", "forecast_reference_time", "step")
               and np.issubdtype(c.dtype, np.number)}
    return {"variables": variables, "grid": grid, "scalars": scalars}
