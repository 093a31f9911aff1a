"""User input validation for `predict` (and truth files for `score`, `plot`); docs/predict.md.

Everything a user can get wrong about an input file is checked here, *before* any model
compute, against the model's data spec (the `data_spec` stored in its checkpoint):

* the file: netCDF, zarr or GRIB (optional extra `grib`; no index file is written next to
  the input), one file or a directory of files; unreadable -> DataError;
* variables: the model's channel names, their common aliases (`ALIASES`) or `--var-map`;
* grid: latitude ascending or descending, longitude 0..360 or -180..180, coordinate names
  lat/latitude and lon/longitude; a larger grid that contains the model's grid is cut to it;
* time: the axis is validated by `svqcast.timeaxis` (calendars, unitless numbers, duplicates,
  float encodings); the frames the model needs (its `idx_in` at its time step) must exist;
* units: converted to the model's units where that is unambiguous (K, degC, degF), refused
  otherwise; NaNs are refused.

The result (`PreparedInput`) holds the frames in the model's physical units on the model's
grid, plus human-readable notes of everything that was adapted. Writing forecasts lives in
`svqcast.forecast_writer` (the wrappers at the end keep the old names importable).
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from svqcast.data.spec import DataSpec
from svqcast.errors import DataError, UsageError
from svqcast.gridmatch import spatial_selection as _spatial_selection
from svqcast.gridmatch import time_dims as _time_dims  # also imported by svqcast.plot
from svqcast.units import convert_units
from svqcast.units import temperature_kind as _temperature_kind

# Equivalent variable names (case-insensitive). The first name is the canonical one.
ALIASES: dict[str, tuple[str, ...]] = {
    "t2m": (
        "t2m", "2t", "2m_temperature", "tas", "air_temperature_2m", "t2", "temperature_2m",
        "2m_air_temperature", "temp2m", "var167",
    ),
    "u10": ("u10", "10u", "10m_u_component_of_wind", "uas", "u_10m", "eastward_wind_10m"),
    "v10": ("v10", "10v", "10m_v_component_of_wind", "vas", "v_10m", "northward_wind_10m"),
    "tcc": ("tcc", "total_cloud_cover", "clt", "cloud_cover"),
    "r": ("r", "relative_humidity", "rh", "hur"),
    "t": ("t", "temperature", "ta", "air_temperature"),
    "z": ("z", "geopotential", "zg"),
    "tp": ("tp", "total_precipitation", "pr", "precipitation"),
}

_ZARR_MARKERS = (".zgroup", ".zattrs", "zarr.json", ".zmetadata")
_NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf", ".cdf", ".h5", ".hdf5")
_GRIB_SUFFIXES = (".grib", ".grib2", ".grb", ".grb2")


# --------------------------------------------------------------------------- spec access


def channel_names(spec: DataSpec) -> list[str]:
    return [str(n) for n in (spec.channel_names or spec.variables)]


def relative_offsets(spec: DataSpec) -> tuple[np.ndarray, np.ndarray]:
    """Input and output frame offsets relative to the initialisation frame (offset 0).

    The spec's `idx_in`/`idx_out` may be absolute (0..11 / 12..23, OpenSTL style) or already
    relative (-11..0 / 1..12); anchoring on the last input frame makes both the same.
    """
    rel_in = np.asarray(spec.idx_in, dtype=np.int64)
    rel_out = np.asarray(spec.idx_out, dtype=np.int64)
    if rel_in.size == 0 or rel_out.size == 0:
        raise DataError("the model's data spec has no input/output frames (t_in/t_out); re-export the checkpoint")
    anchor = int(rel_in.max())
    return rel_in - anchor, rel_out - anchor


def time_step(spec: DataSpec) -> np.timedelta64 | None:
    seconds = spec.time_step_seconds
    if seconds in (None, 0):
        return None
    return np.timedelta64(int(round(float(seconds))), "s")


# --------------------------------------------------------------------------- opening files


def is_zarr_dir(path: Path) -> bool:
    """A zarr store on disk (v2 or v3 metadata): what `open_input` and `svqcast prepare` open as zarr."""
    return path.is_dir() and any((path / m).exists() for m in _ZARR_MARKERS)


def _is_grib(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in _GRIB_SUFFIXES


def _open_grib(path: Path) -> Any:
    """A GRIB file through cfgrib (the optional `grib` extra), never writing an index file.

    cfgrib's default is to cache its index as `FILE.<hash>.idx` next to the input: a
    read-only command must not leave files in the user's data directory, so the index is
    kept in memory (`indexpath=''`).
    """
    import importlib.util

    import xarray as xr

    from svqcast.errors import MissingExtraError

    if importlib.util.find_spec("cfgrib") is None:
        raise MissingExtraError("GRIB input", "grib", "cfgrib")
    return xr.open_dataset(path, engine="cfgrib", backend_kwargs={"indexpath": ""}, decode_timedelta=True)


def _open_one(path: Path) -> Any:
    import xarray as xr

    from svqcast.errors import MissingExtraError

    try:
        if is_zarr_dir(path):
            return xr.open_zarr(path, consolidated=None)
        if path.suffix == ".zarr":
            raise DataError(f"{path}: not a readable zarr store (no .zgroup / zarr.json)")
        if _is_grib(path):
            return _open_grib(path)
        return xr.open_dataset(path)
    except (DataError, MissingExtraError):
        raise
    except Exception as exc:  # netCDF4/h5py/zarr/eccodes raise many types for a broken file
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        kind = "GRIB" if _is_grib(path) else "netCDF or zarr"
        raise DataError(f"{path}: cannot read as {kind} ({reason}); is the file complete?") from None


def _directory_members(path: Path) -> list[Path]:
    members = sorted(
        p for p in path.iterdir()
        if (p.is_file() and p.suffix.lower() in _NETCDF_SUFFIXES + _GRIB_SUFFIXES) or is_zarr_dir(p)
    )
    if not members:
        raise DataError(f"{path}: directory holds no netCDF (*.nc), GRIB (*.grib) or zarr files")
    return members


def _is_frames(path: Path) -> bool:
    from svqcast.data.usersource import IMAGE_SUFFIXES, VIDEO_SUFFIXES

    if path.is_dir():
        return not is_zarr_dir(path) and any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir())
    return path.suffix.lower() in (".npy", *VIDEO_SUFFIXES)


def open_input(path: str | os.PathLike[str]) -> Any:
    """Open a netCDF, GRIB or zarr input, or a directory of them, as one xarray.Dataset."""
    import warnings

    import xarray as xr

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    from svqcast.fsutil import check_input

    check_input(path)  # a FIFO or device would block the reader forever
    if _is_frames(path):  # .npy, video, a folder of images: the readers `svqcast prepare` uses
        from svqcast.data.userframes import frames_dataset

        return frames_dataset(str(path))
    if not path.is_dir() or is_zarr_dir(path):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # decoding chatter (zarr v3 metadata, time encodings)
            return _open_one(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parts = [_open_one(p) for p in _directory_members(path)]
    if len(parts) == 1:
        return parts[0]
    try:
        return xr.combine_by_coords(parts, combine_attrs="override", data_vars="all")
    except Exception as exc:
        raise DataError(
            f"{path}: cannot combine its {len(parts)} files into one dataset ({str(exc)[:160]}); "
            "they should differ only along time"
        ) from None


# --------------------------------------------------------------------------- preparation


@dataclass
class PreparedInput:
    """Validated input frames: `frames` is (n_init, T_in, C, H, W) float32 in model units."""

    frames: np.ndarray
    init_times: np.ndarray
    source: str
    variables: dict[str, str]  # model channel -> input variable used
    notes: list[str] = field(default_factory=list)
    time_coord: bool = True  # False: init_times are frame indices (no calendar)

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


def parse_var_map(pairs: Sequence[str] | Mapping[str, str] | None) -> dict[str, str]:
    """`["a=b", ...]` -> {"a": "b"}; the CLI's repeatable `--var-map`."""
    if pairs is None:
        return {}
    if isinstance(pairs, Mapping):
        return {str(k): str(v) for k, v in pairs.items()}
    out: dict[str, str] = {}
    for item in pairs:
        for part in str(item).split(","):
            if not part.strip():
                continue
            if part.count("=") != 1:
                raise UsageError(f"`var_map` expects INPUT_NAME=MODEL_NAME, got '{part}'")
            a, b = (s.strip() for s in part.split("=", 1))
            if not a or not b:
                raise UsageError(f"`var_map` expects INPUT_NAME=MODEL_NAME, got '{part}'")
            if out.get(a, b) != b:
                raise UsageError(f"`var_map` maps '{a}' twice ({out[a]} and {b}); give it once")
            out[a] = b
    return out


def resolve_variables(ds: Any, channels: list[str], var_map: Mapping[str, str], src: str) -> dict[str, str]:
    data_vars = [str(v) for v in ds.data_vars]
    lower = {v.lower(): v for v in data_vars}
    resolved: dict[str, str] = {}
    for ch in channels:
        chosen: str | None = None
        for a, b in var_map.items():  # either order: INPUT=MODEL or MODEL=INPUT
            if b == ch and a in data_vars:
                chosen = a
            elif a == ch and b in data_vars:
                chosen = b
        if chosen is None:
            names = next((al for al in ALIASES.values() if ch.lower() in al), (ch,))
            names = (ch,) + tuple(n for n in names if n != ch)
            for n in names:
                if n.lower() in lower:
                    chosen = lower[n.lower()]
                    break
            if chosen is None:
                looked = ", ".join(names[:6]) + (" ..." if len(names) > 6 else "")
                raise DataError(
                    f"{src}: no variable for the model's '{ch}' (looked for {looked}); the file has "
                    f"{', '.join(data_vars) or 'no data variables'}; name it with `var_map` NAME={ch}"
                )
        resolved[ch] = chosen
    return resolved


def _format_step(step: np.timedelta64) -> str:
    seconds = int(step / np.timedelta64(1, "s"))
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}min"
    return f"{seconds}s"


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


def frames_allowed(spec: DataSpec) -> bool:
    """Frame-indexed input (no calendar) is accepted only for a model trained on frames."""
    return spec.time_kind == "frame" or time_step(spec) is None


def _missing_frame(times: np.ndarray, t0: np.datetime64, want: np.datetime64, step: np.timedelta64,
                   rel_in: np.ndarray, explicit: bool, pos: Mapping[int, int], src: str) -> DataError:
    """The most useful explanation of why frame `want` (needed for init `t0`) is absent."""
    step_ns = step.astype("timedelta64[ns]")
    diffs = np.diff(np.sort(times))
    in_step = np.median(diffs) if diffs.size else None
    if in_step is not None and in_step > step_ns:
        return DataError(
            f"{src}: time step mismatch: the input is {_format_step(in_step.astype('timedelta64[s]'))}, "
            f"the model needs {_format_step(step)}; resample the input"
        )
    if explicit and int(t0.astype(np.int64)) not in pos:
        return DataError(
            f"{src}: init time {str(t0)[:19]} is not in the input (it covers "
            f"{str(times.min())[:19]} .. {str(times.max())[:19]})"
        )
    return DataError(
        f"{src}: too few time steps: init {str(t0)[:19]} needs {rel_in.size} frames "
        f"{_format_step(step)} apart back to {str(t0 + rel_in.min() * step_ns)[:19]}, "
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


def _open_source(source: Any, spec: DataSpec) -> tuple[Any, str]:
    """(Dataset, label for messages) from a path, a Dataset or a DataArray."""
    import xarray as xr

    if isinstance(source, (str, os.PathLike)):
        return open_input(source), str(source)
    if isinstance(source, xr.DataArray):
        name = source.name or (channel_names(spec) or ["var"])[0]
        return source.to_dataset(name=name), f"DataArray '{source.name}'"
    if isinstance(source, xr.Dataset):
        return source, "input dataset"
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
    from svqcast.timeaxis import time_axis_of

    rel_in, _ = relative_offsets(spec)
    step = time_step(spec)
    n_time = da.sizes[tdim]
    axis = time_axis_of(da, tdim, source=src, allow_frames=frames_allowed(spec))
    if n_time < rel_in.size:
        need = f"{rel_in.size} frames" + (f" {_format_step(step)} apart" if step is not None else "")
        raise DataError(f"{src}: too few time steps: the model needs {need}, the input has {n_time}")
    from svqcast.data.timegrid import calendar_frames, calendar_months

    months = calendar_months(spec)
    if axis.is_datetime and months:  # monthly/seasonal/yearly steps: match frames on the calendar
        inits = np.array([axis.values.max()] if init_time is None else
                         [_to_datetime64(t) for t in _as_list(init_time)], dtype="datetime64[ns]")
        idx = calendar_frames(axis.values, inits, rel_in, months, src)
    elif axis.is_datetime:
        inits, idx = _datetime_frames(axis.values, init_time, rel_in, step, src)
    else:
        inits, idx = _index_frames(n_time, init_time, rel_in, src)
    return _Selection(inits, idx, axis.values, axis.is_datetime, axis.notes)


def _read_frames(da: Any, tdim: str, sel: Mapping[str, Any], dims: tuple[str, str], idx: np.ndarray,
                 name: str, src: str) -> np.ndarray:
    """(n_init, T_in, H, W) float32 values of `da` at the selected frames and grid points."""
    import xarray as xr

    try:
        sub = da.isel({tdim: xr.DataArray(idx.reshape(-1), dims="_frame"), **sel})
        values = np.asarray(sub.transpose("_frame", *dims).values, dtype=np.float32)
    except Exception as exc:
        raise DataError(f"{src}: cannot read variable '{name}' ({str(exc)[:160]}); is the file complete?") from None
    return values.reshape(idx.shape + values.shape[1:])


def _checked_units(values: np.ndarray, da: Any, unit: str, name: str, sel: _Selection, src: str,
                   notes: list[str]) -> np.ndarray:
    """Refuse NaNs, convert units, refuse implausible temperatures."""
    n_nan = int(np.isnan(values).sum())
    if n_nan:
        bad = np.argwhere(np.isnan(values))[0]
        when = str(sel.times[sel.idx[bad[0], bad[1]]])[:19]
        raise DataError(
            f"{src}: variable '{name}' has {n_nan} missing (NaN) values in the input frames "
            f"(first at {when}); fill or drop them before forecasting"
        )
    src_units = da.attrs.get("units")
    values, note = convert_units(values, src_units, unit, name)
    if note:
        notes.append(note)
    if _temperature_kind(unit) == "K":
        lo, hi = float(values.min()), float(values.max())
        if lo < 150.0 or hi > 350.0:
            raise DataError(
                f"{src}: variable '{name}' ranges {lo:.1f}..{hi:.1f} after conversion to K, which "
                f"is not a plausible air temperature; check its 'units' attribute ('{src_units}')"
            )
    return values


def _channel(ds: Any, name: str, spec: DataSpec, unit: str, init_time: Any, src: str,
             notes: list[str], grid_notes: bool) -> tuple[np.ndarray, _Selection]:
    """One model channel: validated (n_init, T_in, H, W) frames in model units."""
    da = ds[name]
    tdims = _time_dims(da)
    if not tdims:
        t_in = relative_offsets(spec)[0].size
        raise DataError(f"{src}: variable '{name}' has no time dimension; the model needs {t_in} input frames")
    tdim = tdims[0]
    dims, coords = list(spec.dims), spec.coords
    isel, (ydim, xdim) = _spatial_selection(ds, da, dims, coords, src, notes if grid_notes else [])
    da = squeeze_extra(da, (tdim, ydim, xdim), name, src)
    sel = _select_frames(da, tdim, spec, init_time, src)
    notes.extend(sel.notes)
    values = _read_frames(da, tdim, isel, (ydim, xdim), sel.idx, name, src)
    return _checked_units(values, da, unit, name, sel, src, notes), sel


def prepare_input(
    source: Any,
    spec: DataSpec,
    *,
    init_time: Any = None,
    var_map: Sequence[str] | Mapping[str, str] | None = None,
) -> PreparedInput:
    """Validate `source` (path, xarray.Dataset or DataArray) against `spec`; load model-ready frames.

    `init_time`: None (the last input time), one time, or a list of times; each needs the
    model's `T_in` frames at its time step ending at that time.
    """
    ds, src = _open_source(source, spec)
    channels = channel_names(spec)
    if not channels:
        raise DataError("the model's data spec lists no variables; re-export the checkpoint")
    units = list(spec.units)
    resolved = resolve_variables(ds, channels, parse_var_map(var_map), src)
    notes = [f"model variable '{ch}' read from input variable '{name}'" for ch, name in resolved.items() if name != ch]
    per_channel: list[np.ndarray] = []
    sel: _Selection | None = None
    for ci, ch in enumerate(channels):
        values, sel = _channel(ds, resolved[ch], spec, units[ci], init_time, src, notes, grid_notes=ci == 0)
        per_channel.append(values)
    assert sel is not None
    return PreparedInput(
        frames=np.stack(per_channel, axis=2).astype(np.float32),  # (n_init, T_in, C, H, W)
        init_times=sel.inits,
        source=src,
        variables=resolved,
        notes=list(dict.fromkeys(notes)),
        time_coord=sel.is_datetime,
    )


# --------------------------------------------------------------------------- output


def build_forecast_dataset(values: np.ndarray, spec: DataSpec, init_times: np.ndarray, lead_steps: Sequence[int],
                           **kwargs: Any) -> Any:
    """The CF-1.8 forecast Dataset; see `svqcast.forecast_writer.build_forecast_dataset`."""
    from svqcast.forecast_writer import build_forecast_dataset as build

    return build(values, spec, init_times, lead_steps, **kwargs)


def check_output_path(path: str | os.PathLike[str], overwrite: bool, inputs: Any = ()) -> Path:
    """Refuse early (before any compute) an output that cannot or must not be written:
    one rule for every command, in svqcast.fsutil.check_output; the suffix picks the format."""
    from svqcast.forecast_writer import check_forecast_output

    return check_forecast_output(path, overwrite=overwrite, inputs=inputs)


def encoding_for(ds: Any, fmt: str = "netcdf") -> dict[str, dict[str, Any]]:
    from svqcast.forecast_writer import encoding_for as enc

    return enc(ds, fmt)


def write_forecast(ds: Any, path: str | os.PathLike[str], overwrite: bool = False, *, layout: str = "cf",
                   inputs: Sequence[Any] = ()) -> Path:
    """Write `ds` atomically as netCDF (.nc) or zarr (.zarr) in `layout`; see svqcast.forecast_writer."""
    from svqcast.forecast_writer import write_forecast as write

    return write(ds, path, overwrite, layout=layout, inputs=inputs)


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_LEAD_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(d|days?|h|hrs?|hours?|min|mins|minutes?|s|secs?|seconds?)")
_LEAD_UNITS = {
    **dict.fromkeys(("d", "day", "days"), "days"),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), "hours"),
    **dict.fromkeys(("min", "mins", "minute", "minutes"), "minutes"),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), "seconds"),
}


def parse_lead_time(value: Any, step: np.timedelta64 | None) -> int:
    """'24h', '2d', '90min', a timedelta, or an int of hours -> number of model steps."""
    import pandas as pd

    if step is None:
        raise UsageError("`lead_time` needs a model with a time step; use `steps` instead")
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
    step_td = pd.Timedelta(step)
    n = td / step_td
    if td <= pd.Timedelta(0) or abs(n - round(n)) > 1e-9:
        raise UsageError(f"`lead_time` {value}: must be a positive multiple of the model's time step ({step_td})")
    return int(round(n))
