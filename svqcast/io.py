"""User input validation and CF-1.8 forecast writing (ARCHITECTURE.md sections 1 and 3).

Everything a user can get wrong about an input file is checked here, *before* any model
compute, against the model's data spec (the `data_spec` stored in its checkpoint):

* the file: netCDF or zarr, one file or a directory of files; unreadable -> DataError;
* variables: the model's channel names, their common aliases (`ALIASES`) or `--var-map`;
* grid: latitude ascending or descending, longitude 0..360 or -180..180, coordinate names
  lat/latitude and lon/longitude; a larger grid that contains the model's grid is cut to it;
* time: the frames the model needs (its `idx_in` at its time step) must exist;
* units: converted to the model's units where that is unambiguous (K, degC, degF), refused
  otherwise; NaNs are refused.

The result (`PreparedInput`) holds the frames in the model's physical units on the model's
grid, plus human-readable notes of everything that was adapted. The writer turns a forecast
array into the CF-1.8 Dataset of ARCHITECTURE.md section 3 and writes it atomically.
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

from svqcast.errors import DataError, UsageError

SVQ_REFERENCE = (
    "Chen, Zhou, Zhao, Liu, Sun and Jin: Does Vector Quantization Fail in Spatio-Temporal "
    "Forecasting? Exploring a Differentiable Sparse Soft-Vector Quantization Approach (SVQ), "
    "arXiv:2312.03406, https://arxiv.org/abs/2312.03406"
)

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

# CF metadata of the variables we know; anything else gets a long_name only.
CF_NAMES: dict[str, tuple[str | None, str]] = {
    "t2m": ("air_temperature", "2 metre temperature"),
    "u10": ("eastward_wind", "10 metre U wind component"),
    "v10": ("northward_wind", "10 metre V wind component"),
    "tcc": ("cloud_area_fraction", "total cloud cover"),
    "r": ("relative_humidity", "relative humidity"),
    "t": ("air_temperature", "temperature"),
    "z": ("geopotential", "geopotential"),
    "tp": ("precipitation_amount", "total precipitation"),
}

_HEIGHT_M = {"t2m": 2.0, "u10": 10.0, "v10": 10.0}  # CF scalar height coordinate
_LAT_NAMES = ("lat", "latitude", "nav_lat", "lats")
_LON_NAMES = ("lon", "longitude", "nav_lon", "lons", "long")
_TIME_NAMES = ("time", "valid_time", "t", "date", "datetime")
_ZARR_MARKERS = (".zgroup", ".zattrs", "zarr.json", ".zmetadata")
_NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf", ".cdf", ".h5", ".hdf5")


# --------------------------------------------------------------------------- spec access


def spec_get(spec: Any, key: str, default: Any = None) -> Any:
    """Read a field of a DataSpec dataclass or of its `to_dict()` form."""
    if isinstance(spec, Mapping):
        value = spec.get(key, default)
    else:
        value = getattr(spec, key, default)
    return default if value is None else value


def channel_names(spec: Any) -> list[str]:
    names = spec_get(spec, "channel_names") or spec_get(spec, "variables") or []
    return [str(n) for n in names]


def relative_offsets(spec: Any) -> tuple[np.ndarray, np.ndarray]:
    """Input and output frame offsets relative to the initialisation frame (offset 0).

    The spec's `idx_in`/`idx_out` may be absolute (0..11 / 12..23, OpenSTL style) or already
    relative (-11..0 / 1..12); anchoring on the last input frame makes both the same.
    """
    t_in = int(spec_get(spec, "t_in", 0))
    t_out = int(spec_get(spec, "t_out", 0))
    idx_in = spec_get(spec, "idx_in")
    idx_out = spec_get(spec, "idx_out")
    rel_in = np.asarray(idx_in if idx_in is not None else range(t_in), dtype=np.int64)
    rel_out = np.asarray(idx_out if idx_out is not None else range(t_in, t_in + t_out), dtype=np.int64)
    if rel_in.size == 0 or rel_out.size == 0:
        raise DataError("the model's data spec has no input/output frames (t_in/t_out); re-export the checkpoint")
    anchor = int(rel_in.max())
    return rel_in - anchor, rel_out - anchor


def time_step(spec: Any) -> np.timedelta64 | None:
    seconds = spec_get(spec, "time_step_seconds")
    if seconds in (None, 0):
        return None
    return np.timedelta64(int(round(float(seconds))), "s")


# --------------------------------------------------------------------------- units

_KELVIN = {"k", "kelvin", "degk", "deg_k", "degreek", "degreesk", "degree_kelvin", "degrees_kelvin"}
_CELSIUS = {
    "c", "degc", "deg_c", "celsius", "degreec", "degreesc", "degree_celsius", "degrees_celsius",
    "degreecelsius", "degreescelsius", "°c", "ºc",
}
_FAHRENHEIT = {
    "f", "degf", "deg_f", "fahrenheit", "degreef", "degreesf", "degree_fahrenheit",
    "degrees_fahrenheit", "°f", "ºf",
}
_DIMENSIONLESS = {"", "1", "-", "none", "dimensionless", "count", "counts", "unitless"}


def _norm_units(units: str) -> str:
    u = str(units).strip().lower().replace(" ", "").replace("°", "deg").replace("º", "deg")
    u = u.replace("degrees", "deg").replace("degree", "deg")
    return u


def _temperature_kind(units: str) -> str | None:
    raw = str(units).strip().lower().replace(" ", "")
    u = _norm_units(units)
    for kind, names in (("K", _KELVIN), ("degC", _CELSIUS), ("degF", _FAHRENHEIT)):
        if raw in names or u in {_norm_units(n) for n in names}:
            return kind
    return None


def convert_units(values: np.ndarray, src: str | None, dst: str, name: str) -> tuple[np.ndarray, str | None]:
    """Convert `values` from `src` to `dst` units; returns (values, note or None).

    Only conversions that cannot be ambiguous are done (temperatures: K, degC, degF).
    Same units (after normalising spelling) are a no-op; anything else is refused.
    """
    what = f"variable '{name}'"
    dst_norm = _norm_units(dst)
    if src is None:
        if dst_norm in _DIMENSIONLESS:
            return values, None
        raise DataError(
            f"{what} has no 'units' attribute; the model expects '{dst}'. Set it (e.g. "
            f"ds['{name}'].attrs['units'] = '{dst}') and retry"
        )
    if _norm_units(src) == dst_norm:
        return values, None
    s_kind, d_kind = _temperature_kind(src), _temperature_kind(dst)
    if s_kind and d_kind:
        if s_kind == d_kind:
            return values, None
        kelvin = {
            "K": lambda v: v,
            "degC": lambda v: v + 273.15,
            "degF": lambda v: (v - 32.0) * (5.0 / 9.0) + 273.15,
        }[s_kind](values.astype(np.float64))
        out = {
            "K": lambda v: v,
            "degC": lambda v: v - 273.15,
            "degF": lambda v: (v - 273.15) * (9.0 / 5.0) + 32.0,
        }[d_kind](kelvin)
        return out.astype(np.float32), f"{what}: converted {src} -> {dst}"
    if _norm_units(src) in _DIMENSIONLESS and dst_norm in _DIMENSIONLESS:
        return values, None
    raise DataError(
        f"{what} is in '{src}' but the model expects '{dst}' and svqcast cannot convert between "
        f"them; convert the data to {dst} (or fix the 'units' attribute) and retry"
    )


# --------------------------------------------------------------------------- opening files


def _is_zarr_dir(path: Path) -> bool:
    return path.is_dir() and any((path / m).exists() for m in _ZARR_MARKERS)


def _open_one(path: Path) -> Any:
    import xarray as xr

    try:
        if _is_zarr_dir(path):
            return xr.open_zarr(path, consolidated=None)
        if path.suffix == ".zarr":
            raise DataError(f"{path}: not a readable zarr store (no .zgroup / zarr.json)")
        return xr.open_dataset(path)
    except DataError:
        raise
    except Exception as exc:  # netCDF4/h5py/zarr raise many types for a broken file
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: cannot read as netCDF or zarr ({reason}); is the file complete?") from None


def open_input(path: str | os.PathLike[str]) -> Any:
    """Open a netCDF file, a zarr store, or a directory of either, as one xarray.Dataset."""
    import xarray as xr

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if path.is_dir() and not _is_zarr_dir(path):
        members = sorted(
            p for p in path.iterdir()
            if (p.is_file() and p.suffix.lower() in _NETCDF_SUFFIXES) or _is_zarr_dir(p)
        )
        if not members:
            raise DataError(f"{path}: directory holds no netCDF (*.nc) or zarr files")
        parts = [_open_one(p) for p in members]
        if len(parts) == 1:
            return parts[0]
        try:
            return xr.combine_by_coords(parts, combine_attrs="override", data_vars="all")
        except Exception as exc:
            raise DataError(
                f"{path}: cannot combine its {len(parts)} files into one dataset ({exc}); "
                "they should differ only along time"
            ) from None
    return _open_one(path)


# --------------------------------------------------------------------------- grid helpers


def _find_coord(ds: Any, names: Sequence[str], standard_name: str, units: Sequence[str]) -> str | None:
    lower = {str(k).lower(): str(k) for k in list(ds.coords) + list(ds.dims)}
    for n in names:
        if n in lower:
            return lower[n]
    for k, v in ds.coords.items():
        if v.ndim == 1 and (
            v.attrs.get("standard_name") == standard_name or v.attrs.get("units") in units
        ):
            return str(k)
    return None


def describe_axis(values: np.ndarray) -> str:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return "(empty)"
    if values.size == 1:
        return f"{values[0]:g} (1 point)"
    step = np.median(np.abs(np.diff(values)))
    return f"{values[0]:g}..{values[-1]:g} ({values.size} points, step {step:g})"


def _match_axis(model: np.ndarray, given: np.ndarray, periodic: bool) -> np.ndarray | None:
    """Index into `given` for every model coordinate, or None if one is missing."""
    model = np.asarray(model, dtype=np.float64)
    given = np.asarray(given, dtype=np.float64)
    spacing = np.median(np.abs(np.diff(model))) if model.size > 1 else 1.0
    tol = max(1e-4, 1e-3 * float(spacing))
    if periodic:
        base = float(model.min()) - tol
        given = np.mod(given - base, 360.0) + base
    diff = np.abs(given[None, :] - model[:, None])
    idx = diff.argmin(axis=1)
    if np.any(diff[np.arange(model.size), idx] > tol):
        return None
    return idx


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
            if "=" not in part:
                raise UsageError(f"--var-map expects INPUT_NAME=MODEL_NAME, got '{part}'")
            a, b = (s.strip() for s in part.split("=", 1))
            if not a or not b:
                raise UsageError(f"--var-map expects INPUT_NAME=MODEL_NAME, got '{part}'")
            out[a] = b
    return out


def _resolve_variables(ds: Any, channels: list[str], var_map: Mapping[str, str], src: str) -> dict[str, str]:
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
                    f"{', '.join(data_vars) or 'no data variables'}; name it with --var-map NAME={ch}"
                )
        resolved[ch] = chosen
    return resolved


def _spatial_selection(ds: Any, da: Any, spec: Any, src: str, notes: list[str]) -> tuple[dict[str, Any], tuple[str, str]]:
    """isel indexers that put `da` on the model grid, plus the (y, x) dim names of `da`."""
    dims = list(spec_get(spec, "dims", ["lat", "lon"]))
    coords = spec_get(spec, "coords", {}) or {}
    if dims and dims[0] in ("lat", "latitude"):
        lat_name = _find_coord(ds, _LAT_NAMES, "latitude", ("degrees_north", "degree_north", "degrees_N"))
        lon_name = _find_coord(ds, _LON_NAMES, "longitude", ("degrees_east", "degree_east", "degrees_E"))
        if lat_name is None or lon_name is None:
            raise DataError(
                f"{src}: no latitude/longitude coordinates found (looked for lat/latitude and "
                "lon/longitude); the model needs a lat-lon grid"
            )
        lat_v = np.asarray(ds[lat_name].values)
        lon_v = np.asarray(ds[lon_name].values)
        if lat_v.ndim != 1 or lon_v.ndim != 1:
            raise DataError(f"{src}: 2-D (curvilinear) lat/lon are not supported; regrid to a regular grid")
        lat_dim, lon_dim = ds[lat_name].dims[0], ds[lon_name].dims[0]
        m_lat = np.asarray(coords.get(dims[0], coords.get("lat", [])), dtype=np.float64)
        m_lon = np.asarray(coords.get(dims[1], coords.get("lon", [])), dtype=np.float64)
        i_lat = _match_axis(m_lat, lat_v, periodic=False)
        i_lon = _match_axis(m_lon, lon_v, periodic=True)
        if i_lat is None or i_lon is None:
            raise DataError(
                f"{src}: grid mismatch: the input grid (lat {describe_axis(lat_v)}, lon "
                f"{describe_axis(lon_v)}) does not contain the model grid (lat {describe_axis(m_lat)}, "
                f"lon {describe_axis(m_lon)}); regrid the input or use a model trained on this grid"
            )
        if len(lat_v) > 1 and lat_v[0] != lat_v[-1] and (lat_v[-1] > lat_v[0]) != (m_lat[-1] > m_lat[0]):
            notes.append("latitude order reversed to match the model")
        if np.any(lon_v > 180.0) != np.any(m_lon > 180.0):
            notes.append("longitudes wrapped to the model's convention")
        if lat_v.size != m_lat.size or lon_v.size != m_lon.size:
            notes.append(
                f"input grid (lat {describe_axis(lat_v)}, lon {describe_axis(lon_v)}) cut to the model "
                f"grid (lat {describe_axis(m_lat)}, lon {describe_axis(m_lon)})"
            )
        return {lat_dim: i_lat, lon_dim: i_lon}, (lat_dim, lon_dim)
    # generic y/x grid: same size, or a contained sub-grid when both sides have coordinates
    y_name, x_name = (dims + ["y", "x"])[:2] if len(dims) >= 2 else ("y", "x")
    sp_dims = [d for d in da.dims if d not in _time_dims(da)]
    ydim = y_name if y_name in da.dims else (sp_dims[-2] if len(sp_dims) >= 2 else None)
    xdim = x_name if x_name in da.dims else (sp_dims[-1] if len(sp_dims) >= 2 else None)
    if ydim is None or xdim is None:
        raise DataError(f"{src}: cannot find the two spatial dimensions ({y_name}, {x_name}) of the data")
    m_y = coords.get(y_name)
    m_x = coords.get(x_name)
    sel: dict[str, Any] = {}
    for dim, model_vals, name in ((ydim, m_y, y_name), (xdim, m_x, x_name)):
        size = da.sizes[dim]
        n_model = len(model_vals) if model_vals is not None else None
        if model_vals is not None and dim in ds.coords:
            idx = _match_axis(np.asarray(model_vals, float), np.asarray(ds[dim].values, float), False)
            if idx is None:
                raise DataError(
                    f"{src}: grid mismatch on {name}: input {describe_axis(ds[dim].values)}, "
                    f"model {describe_axis(np.asarray(model_vals, float))}"
                )
            sel[dim] = idx
        elif n_model is not None and size != n_model:
            raise DataError(f"{src}: grid mismatch: input {name} has {size} points, the model needs {n_model}")
    return sel, (ydim, xdim)


def _time_dims(da: Any) -> list[str]:
    """Dimensions of `da` that are time: a known name, or a datetime64 coordinate."""
    out = []
    for d in da.dims:
        if str(d).lower() in _TIME_NAMES:
            out.append(d)
        elif d in da.coords and np.issubdtype(da[d].dtype, np.datetime64):
            out.append(d)
    return out


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
        raise UsageError(f"--init-time: cannot parse '{value}' as a date-time (e.g. 2019-03-29T00:00)") from None


def prepare_input(
    source: Any,
    spec: Any,
    *,
    init_time: Any = None,
    var_map: Sequence[str] | Mapping[str, str] | None = None,
) -> PreparedInput:
    """Validate `source` (path, xarray.Dataset or DataArray) against `spec`; load model-ready frames.

    `init_time`: None (the last input time), one time, or a list of times; each needs the
    model's `T_in` frames at its time step ending at that time.
    """
    import xarray as xr

    if isinstance(source, (str, os.PathLike)):
        src = str(source)
        ds = open_input(source)
    elif isinstance(source, xr.DataArray):
        src = f"DataArray '{source.name}'"
        ds = source.to_dataset(name=source.name or (channel_names(spec) or ["var"])[0])
    elif isinstance(source, xr.Dataset):
        src = "input dataset"
        ds = source
    else:
        raise UsageError(f"predict expects a file path or an xarray Dataset/DataArray, got {type(source).__name__}")

    notes: list[str] = []
    channels = channel_names(spec)
    if not channels:
        raise DataError("the model's data spec lists no variables; re-export the checkpoint")
    units = list(spec_get(spec, "units", [""] * len(channels)))
    if len(units) < len(channels):
        units += [""] * (len(channels) - len(units))
    vmap = parse_var_map(var_map)
    resolved = _resolve_variables(ds, channels, vmap, src)
    for ch, name in resolved.items():
        if name != ch:
            notes.append(f"model variable '{ch}' read from input variable '{name}'")

    rel_in, _ = relative_offsets(spec)
    t_in = rel_in.size
    step = time_step(spec)
    frames_per_channel: list[np.ndarray] = []
    init_out: np.ndarray | None = None
    time_coord = True
    for ci, ch in enumerate(channels):
        da = ds[resolved[ch]]
        tdims = _time_dims(da)
        if not tdims:
            raise DataError(f"{src}: variable '{resolved[ch]}' has no time dimension; the model needs {t_in} input frames")
        tdim = tdims[0]
        sel, (ydim, xdim) = _spatial_selection(ds, da, spec, src, notes if ci == 0 else [])
        extra = [d for d in da.dims if d not in (tdim, ydim, xdim)]
        for d in extra:
            if da.sizes[d] != 1:
                raise DataError(
                    f"{src}: variable '{resolved[ch]}' has an extra dimension '{d}' of size {da.sizes[d]}; "
                    f"select one {d} first (e.g. ds.sel({d}=...))"
                )
            da = da.isel({d: 0})
        n_time = da.sizes[tdim]
        times = np.asarray(da[tdim].values) if tdim in da.coords else np.arange(n_time)
        is_dt = np.issubdtype(times.dtype, np.datetime64)
        time_coord = bool(is_dt)
        if n_time < t_in:
            need = f"{t_in} frames" + (f" {_format_step(step)} apart" if step is not None else "")
            raise DataError(f"{src}: too few time steps: the model needs {need}, the input has {n_time}")
        # which frames
        if is_dt:
            times = times.astype("datetime64[ns]")
            if step is None:
                raise DataError("the model's data spec has no time_step_seconds, but the input has calendar times")
            if init_time is None:
                inits = np.array([times.max()])
            else:
                seq = init_time if isinstance(init_time, (list, tuple, np.ndarray)) else [init_time]
                inits = np.array([_to_datetime64(t) for t in seq], dtype="datetime64[ns]")
            pos = {int(t): i for i, t in enumerate(times.astype(np.int64))}  # ns since epoch -> index
            idx = np.empty((inits.size, t_in), dtype=np.int64)
            for k, t0 in enumerate(inits):
                for j, r in enumerate(rel_in):
                    want = (t0 + r * step.astype("timedelta64[ns]")).astype("datetime64[ns]")
                    i = pos.get(int(want.astype(np.int64)))
                    if i is None:
                        diffs = np.diff(np.sort(times))
                        in_step = np.median(diffs) if diffs.size else None
                        if in_step is not None and in_step != step.astype("timedelta64[ns]") and in_step > step.astype("timedelta64[ns]"):
                            raise DataError(
                                f"{src}: time step mismatch: the input is {_format_step(in_step.astype('timedelta64[s]'))}, "
                                f"the model needs {_format_step(step)}; resample the input"
                            )
                        if init_time is not None and int(t0.astype(np.int64)) not in pos:
                            raise DataError(
                                f"{src}: init time {str(t0)[:19]} is not in the input (it covers "
                                f"{str(times.min())[:19]} .. {str(times.max())[:19]})"
                            )
                        raise DataError(
                            f"{src}: too few time steps: init {str(t0)[:19]} needs {t_in} frames "
                            f"{_format_step(step)} apart back to {str(t0 + rel_in.min() * step.astype('timedelta64[ns]'))[:19]}, "
                            f"but {str(want)[:19]} is missing"
                        )
                    idx[k, j] = i
        else:
            if init_time is None:
                inits = np.array([n_time - 1])
            else:
                seq = init_time if isinstance(init_time, (list, tuple, np.ndarray)) else [init_time]
                try:
                    inits = np.array([int(t) for t in seq])
                except (TypeError, ValueError):
                    raise UsageError("--init-time: this input has no calendar time axis; give a frame index") from None
            idx = inits[:, None] + rel_in[None, :]
            if idx.min() < 0 or idx.max() >= n_time:
                raise DataError(f"{src}: too few time steps: the model needs {t_in} frames before the init frame")
        init_out = inits
        try:
            sub = da.isel({tdim: xr.DataArray(idx.reshape(-1), dims="_frame"), **sel})
            sub = sub.transpose("_frame", ydim, xdim)
            values = np.asarray(sub.values, dtype=np.float32)
        except DataError:
            raise
        except Exception as exc:
            raise DataError(f"{src}: cannot read variable '{resolved[ch]}' ({str(exc)[:160]}); is the file complete?") from None
        values = values.reshape(idx.shape + values.shape[1:])
        n_nan = int(np.isnan(values).sum())
        if n_nan:
            bad = np.argwhere(np.isnan(values))[0]
            when = str(times[idx[bad[0], bad[1]]])[:19]
            raise DataError(
                f"{src}: variable '{resolved[ch]}' has {n_nan} missing (NaN) values in the input frames "
                f"(first at {when}); fill or drop them before forecasting"
            )
        src_units = da.attrs.get("units")
        values, note = convert_units(values, src_units, units[ci], resolved[ch])
        if note:
            notes.append(note)
        if _temperature_kind(units[ci]) == "K":
            lo, hi = float(values.min()), float(values.max())
            if lo < 150.0 or hi > 350.0:
                raise DataError(
                    f"{src}: variable '{resolved[ch]}' ranges {lo:.1f}..{hi:.1f} after conversion to K, which "
                    f"is not a plausible air temperature; check its 'units' attribute ('{src_units}')"
                )
        frames_per_channel.append(values)
    frames = np.stack(frames_per_channel, axis=2).astype(np.float32)  # (n_init, T_in, C, H, W)
    assert init_out is not None
    return PreparedInput(
        frames=frames,
        init_times=init_out,
        source=src,
        variables=resolved,
        notes=list(dict.fromkeys(notes)),
        time_coord=time_coord,
    )


# --------------------------------------------------------------------------- output


def build_forecast_dataset(
    values: np.ndarray,
    spec: Any,
    init_times: np.ndarray,
    lead_steps: Sequence[int],
    *,
    source: str,
    history: str,
    trained_steps: int,
    model_ref: str,
    extra_attrs: Mapping[str, Any] | None = None,
) -> Any:
    """The CF-1.8 forecast Dataset of ARCHITECTURE.md section 3.

    `values`: (n_init, n_lead, C, H, W) in the model's physical units; `lead_steps`: lead
    of each output frame in multiples of the model's time step.
    """
    import xarray as xr

    channels = channel_names(spec)
    units = list(spec_get(spec, "units", [""] * len(channels)))
    dims = list(spec_get(spec, "dims", ["lat", "lon"]))
    coords_spec = spec_get(spec, "coords", {}) or {}
    ydim, xdim = (dims + ["y", "x"])[:2]
    step = time_step(spec)
    n_init, n_lead, n_ch, h, w = values.shape
    lead_steps = np.asarray(list(lead_steps), dtype=np.int64)
    coords: dict[str, Any] = {}
    if np.issubdtype(np.asarray(init_times).dtype, np.datetime64):
        coords["time"] = ("time", np.asarray(init_times, dtype="datetime64[ns]"), {
            "standard_name": "forecast_reference_time", "long_name": "forecast initialisation time",
        })
    else:
        coords["time"] = ("time", np.asarray(init_times, dtype=np.int64), {
            "long_name": "index of the initialisation frame in the input", "units": "1",
        })
    if step is not None:
        leads = (lead_steps * step).astype("timedelta64[ns]")
        coords["lead_time"] = ("lead_time", leads, {
            "standard_name": "forecast_period", "long_name": "time since forecast initialisation",
        })
        if "standard_name" in coords["time"][2]:
            valid = coords["time"][1][:, None] + leads[None, :]
            coords["valid_time"] = (("time", "lead_time"), valid, {
                "standard_name": "time", "long_name": "time the forecast is valid for",
            })
    else:
        coords["lead_time"] = ("lead_time", lead_steps, {
            "long_name": "lead time in model steps", "units": "1",
        })
    if ydim in ("lat", "latitude"):
        coords["lat"] = ("lat", np.asarray(coords_spec.get(ydim, coords_spec.get("lat")), dtype=np.float32), {
            "standard_name": "latitude", "long_name": "latitude", "units": "degrees_north", "axis": "Y",
        })
        coords["lon"] = ("lon", np.asarray(coords_spec.get(xdim, coords_spec.get("lon")), dtype=np.float32), {
            "standard_name": "longitude", "long_name": "longitude", "units": "degrees_east", "axis": "X",
        })
        sp = ("lat", "lon")
    else:
        ys = coords_spec.get(ydim)
        xs = coords_spec.get(xdim)
        coords["y"] = ("y", np.asarray(ys if ys is not None else np.arange(h)), {
            "long_name": "grid row", "axis": "Y", "units": "1"})
        coords["x"] = ("x", np.asarray(xs if xs is not None else np.arange(w)), {
            "long_name": "grid column", "axis": "X", "units": "1"})
        sp = ("y", "x")
    data_vars: dict[str, Any] = {}
    for c, ch in enumerate(channels):
        std_name, long_name = CF_NAMES.get(ch, (None, ch))
        attrs = {"units": units[c] if c < len(units) else "1", "long_name": long_name}
        if std_name:
            attrs["standard_name"] = std_name
        if ch in _HEIGHT_M and len({_HEIGHT_M.get(c) for c in channels}) == 1:
            # CF scalar coordinate for the 2 m / 10 m level (only when every variable shares it)
            coords["height"] = ((), np.float32(_HEIGHT_M[ch]), {
                "standard_name": "height", "long_name": "height above ground", "units": "m",
                "positive": "up", "axis": "Z",
            })
        data_vars[ch] = (("time", "lead_time") + sp, values[:, :, c].astype(np.float32), attrs)
    autoregressive = bool(n_lead and int(lead_steps.max()) > int(trained_steps))
    attrs: dict[str, Any] = {
        "Conventions": "CF-1.8",
        "title": f"svqcast forecast of {', '.join(channels)}",
        "source": source,
        "history": history,
        "references": SVQ_REFERENCE,
        "svqcast_model": model_ref,
        "svqcast_trained_horizon_steps": int(trained_steps),
        "svqcast_autoregressive": "true" if autoregressive else "false",
    }
    if step is not None:
        attrs["svqcast_time_step"] = _format_step(step)
        attrs["svqcast_trained_horizon"] = _format_step(step * int(trained_steps))
    if autoregressive:
        attrs["comment"] = (
            f"lead times beyond the trained horizon ({int(trained_steps)} steps) come from an "
            "autoregressive roll-out that feeds forecasts back as input; expect larger errors there"
        )
    attrs.update(dict(extra_attrs or {}))
    return xr.Dataset(data_vars=data_vars, coords=coords, attrs=attrs)


def check_output_path(path: str | os.PathLike[str], overwrite: bool) -> Path:
    """Refuse early (before any compute) an output that cannot or must not be written."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"output directory {parent} does not exist; create it first (mkdir -p {parent})")
    if path.is_dir():
        raise UsageError(f"output {path} is a directory; give a file name such as {path / 'forecast.nc'}")
    if path.exists() and not overwrite:
        raise UsageError(f"output {path} already exists; pass --overwrite to replace it")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"output directory {parent} is not writable")
    return path


def encoding_for(ds: Any) -> dict[str, dict[str, Any]]:
    """zlib, float32, one chunk per (init time, lead time); no fill values on coordinates."""
    enc: dict[str, dict[str, Any]] = {}
    for name, var in ds.data_vars.items():
        chunks = tuple(1 if d in ("time", "lead_time") else var.sizes[d] for d in var.dims)
        enc[str(name)] = {
            "zlib": True, "complevel": 4, "shuffle": True, "dtype": "float32",
            "chunksizes": chunks, "_FillValue": np.float32(np.nan),
        }
    for name in ds.coords:
        enc[str(name)] = {"_FillValue": None}
    if "lead_time" in ds.coords and np.issubdtype(ds["lead_time"].dtype, np.timedelta64):
        enc["lead_time"].update({"units": "hours", "dtype": "int32"})
        lead_h = ds["lead_time"].values / np.timedelta64(1, "h")
        if not np.allclose(lead_h, np.round(lead_h)):
            enc["lead_time"].update({"units": "minutes"})
    for tname in ("time", "valid_time"):
        if tname in ds.coords and np.issubdtype(ds[tname].dtype, np.datetime64):
            enc[tname].update({"units": "hours since 1970-01-01 00:00:00", "calendar": "proleptic_gregorian"})
    return enc


def write_forecast(ds: Any, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Write `ds` as netCDF4 atomically: a temp file next to `path`, renamed on success."""
    from svqcast.fsutil import atomic_path

    path = check_output_path(path, overwrite)
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, format="NETCDF4", engine="netcdf4", encoding=encoding_for(ds))
    return path


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
        raise UsageError("--lead-time needs a model with a time step; use --steps instead")
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
        raise UsageError(f"--lead-time: cannot parse '{value}' (examples: 24h, 2d, 90min)") from None
    step_td = pd.Timedelta(step)
    n = td / step_td
    if td <= pd.Timedelta(0) or abs(n - round(n)) > 1e-9:
        raise UsageError(f"--lead-time {value}: must be a positive multiple of the model's time step ({step_td})")
    return int(round(n))
