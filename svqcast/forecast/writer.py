"""Forecast files as svqcast writes them: the CF-1.8 Dataset, three layouts, netCDF or zarr.

* ``cf`` (default): dims ``(time, lead_time, lat, lon)``; ``time`` is the initialisation
  (``forecast_reference_time``), ``valid_time`` a 2-D auxiliary coordinate. Written so that
  IOOS compliance-checker ``cf:1.8`` finds nothing but its section 5.1 heuristic on the time
  dimension name: int32 time coordinates, int32 attributes, latitude/longitude cell bounds.
* ``wb2``: WeatherBench2's names and order, ``(time, prediction_timedelta, latitude,
  longitude)``, both spatial axes ascending, variables such as ``2m_temperature``.
* ``valid-time``: one initialisation, ``time`` = valid time (``lead_time`` and
  ``forecast_reference_time`` as auxiliary coordinates), the layout CDO and most viewers read.

The file format follows the suffix: ``.nc`` netCDF4, ``.zarr`` a consolidated zarr (v2)
store with one chunk per lead time; anything else is a usage error, raised before compute.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from svqcast.data.spec import DataSpec, channel_levels, channel_names, time_step
from svqcast.errors import MissingExtraError, UsageError
from svqcast.fsutil import atomic_dir, atomic_path, check_output
from svqcast.sources.calendars import calendar_months, shift_months
from svqcast.sources.leadtime import format_step
from svqcast.sources.lexicon import CF_NAMES, HEIGHT_M, WB2_NAMES

SVQ_REFERENCE = (
    "Chen, Zhou, Zhao, Liu, Sun and Jin: Does Vector Quantization Fail in Spatio-Temporal "
    "Forecasting? Exploring a Differentiable Sparse Soft-Vector Quantization Approach (SVQ), "
    "arXiv:2312.03406, https://arxiv.org/abs/2312.03406"
)

LAYOUTS = ("cf", "wb2", "valid-time")
FORMATS = {".nc": "netcdf", ".zarr": "zarr", ".npy": "npy"}
_TIME_DIMS = ("time", "lead_time", "prediction_timedelta")


# --------------------------------------------------------------------------- building


def step_unit(spec: DataSpec) -> tuple[int, str] | None:
    """(count, unit) of one step when leads are counted in steps rather than durations: calendar
    steps (1 "months", 12 "months" shown as years) and frame data (1 "frames"); None for a fixed
    duration such as hours."""
    months = calendar_months(spec)
    if months:
        return (months // 12, "years") if months % 12 == 0 else (months, "months")
    if spec.time_kind == "frame" or time_step(spec) is None:
        return 1, "frames"
    return None


def _lead_coord(spec: DataSpec, lead_steps: np.ndarray) -> tuple[Any, ...]:
    """`lead_time`: a duration (forecast_period) for fixed steps; for calendar and frame steps the
    integer count of steps, its unit in the attributes (CF allows months and years only as
    documentation), with explicit valid times beside it."""
    counted = step_unit(spec)
    if counted is None:
        return ("lead_time", (lead_steps * time_step(spec)).astype("timedelta64[ns]"), {
            "standard_name": "forecast_period", "long_name": "time since forecast initialisation"})
    per_step, unit = counted
    attrs: dict[str, Any] = {"long_name": f"lead time in steps of {per_step} {unit}", "units": "1",
                             "svqcast_step_unit": unit, "svqcast_step_size": np.int32(per_step)}
    if unit == "frames" and spec.time_step_seconds:
        attrs["svqcast_seconds_per_frame"] = float(spec.time_step_seconds)
    return ("lead_time", lead_steps.astype(np.int32), attrs)


def _time_coords(spec: DataSpec, init_times: np.ndarray, lead_steps: np.ndarray) -> dict[str, Any]:
    coords: dict[str, Any] = {}
    calendar = np.issubdtype(np.asarray(init_times).dtype, np.datetime64)
    if calendar:
        coords["time"] = ("time", np.asarray(init_times, dtype="datetime64[ns]"), {
            "standard_name": "forecast_reference_time", "long_name": "forecast initialisation time",
            "axis": "T",
        })
    else:
        coords["time"] = ("time", np.asarray(init_times, dtype=np.int32), {
            "long_name": "index of the initialisation frame in the input", "units": "1",
        })
    coords["lead_time"] = _lead_coord(spec, lead_steps)
    if not calendar:
        return coords
    months = calendar_months(spec)
    if months:  # valid times on the input's own calendar positions: the init's day of month and time
        valid = shift_months(coords["time"][1][:, None], lead_steps[None, :] * months)
    else:
        valid = coords["time"][1][:, None] + coords["lead_time"][1][None, :]
    coords["valid_time"] = (("time", "lead_time"), valid, {
        "standard_name": "time", "long_name": "time the forecast is valid for",
    })
    return coords


def cell_bounds(values: np.ndarray, limit: float | None = None) -> np.ndarray:
    """(n, 2) bounds halfway between neighbours, the outer ones mirrored (clipped to +-limit)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 1:
        half = 0.5
        edges = np.array([v[0] - half, v[0] + half])
    else:
        mids = (v[1:] + v[:-1]) / 2
        edges = np.concatenate([[2 * v[0] - mids[0]], mids, [2 * v[-1] - mids[-1]]])
    if limit is not None:
        edges = np.clip(edges, -limit, limit)
    return np.stack([edges[:-1], edges[1:]], axis=1)


def _space_coords(spec: DataSpec, h: int, w: int) -> tuple[dict[str, Any], tuple[str, str]]:
    dims, given = list(spec.dims), spec.coords
    ydim, xdim = (dims + ["y", "x"])[:2]
    coords: dict[str, Any] = {}
    if ydim in ("lat", "latitude"):
        lat = np.asarray(given.get(ydim, given.get("lat")), dtype=np.float32)
        lon = np.asarray(given.get(xdim, given.get("lon")), dtype=np.float32)
        coords["lat"] = ("lat", lat, {"standard_name": "latitude", "long_name": "latitude",
                                      "units": "degrees_north", "axis": "Y", "bounds": "lat_bnds"})
        coords["lon"] = ("lon", lon, {"standard_name": "longitude", "long_name": "longitude",
                                      "units": "degrees_east", "axis": "X", "bounds": "lon_bnds"})
        coords["lat_bnds"] = (("lat", "bnds"), cell_bounds(lat, 90.0).astype(np.float32), {})
        coords["lon_bnds"] = (("lon", "bnds"), cell_bounds(lon).astype(np.float32), {})
        return coords, ("lat", "lon")
    ys, xs = given.get(ydim), given.get(xdim)
    coords["y"] = ("y", np.asarray(ys if ys is not None else np.arange(h)),
                   {"long_name": "grid row", "axis": "Y", "units": "1"})
    coords["x"] = ("x", np.asarray(xs if xs is not None else np.arange(w)),
                   {"long_name": "grid column", "axis": "X", "units": "1"})
    return coords, ("y", "x")


def _data_vars(values: np.ndarray, channels: Sequence[str], units: Sequence[str], sp: tuple[str, str],
               coords: dict[str, Any]) -> dict[str, Any]:
    data_vars: dict[str, Any] = {}
    heights = {HEIGHT_M.get(c) for c in channels}
    for c, ch in enumerate(channels):
        std_name, long_name = CF_NAMES.get(ch, (None, ch))
        attrs = {"units": units[c] if c < len(units) else "1", "long_name": long_name}
        if std_name:
            attrs["standard_name"] = std_name
        if ch in HEIGHT_M and len(heights) == 1:
            # CF scalar coordinate for the 2 m / 10 m level (only when every variable shares it)
            coords["height"] = ((), np.float32(HEIGHT_M[ch]), {
                "standard_name": "height", "long_name": "height above ground", "units": "m",
                "positive": "up", "axis": "Z",
            })
        data_vars[ch] = (("time", "lead_time") + sp, values[:, :, c].astype(np.float32), attrs)
    return data_vars


def _global_attrs(spec: DataSpec, channels: Sequence[str], lead_steps: np.ndarray, trained_steps: int, *,
                  source: str, history: str, model_ref: str) -> dict[str, Any]:
    step = time_step(spec)
    autoregressive = bool(lead_steps.size and int(lead_steps.max()) > int(trained_steps))
    attrs: dict[str, Any] = {
        "Conventions": "CF-1.8",
        "title": f"svqcast forecast of {', '.join(channels)}",
        "source": source,
        "history": history,
        "references": SVQ_REFERENCE,
        "svqcast_model": model_ref,
        "svqcast_trained_horizon_steps": np.int32(trained_steps),
        "svqcast_autoregressive": "true" if autoregressive else "false",
    }

    months = calendar_months(spec)
    if months:  # monthly/seasonal/yearly: calendar steps, not a fixed number of seconds
        attrs["svqcast_time_step"] = f"{months} month(s) (calendar)"
        attrs["svqcast_trained_horizon"] = f"{months * int(trained_steps)} month(s) (calendar)"
    elif step is not None:
        attrs["svqcast_time_step"] = format_step(step)
        attrs["svqcast_trained_horizon"] = format_step(step * int(trained_steps))
    else:  # frame data: leads are frame counts
        attrs["svqcast_time_step"] = "1 frame"
        attrs["svqcast_trained_horizon"] = f"{int(trained_steps)} frames"
    if autoregressive:
        attrs["comment"] = (
            f"lead times beyond the trained horizon ({int(trained_steps)} steps) come from an "
            "autoregressive roll-out that feeds forecasts back as input; expect larger errors there"
        )
    return attrs


def _cf_attr(value: Any) -> Any:
    """CF (netCDF classic types) has no 64-bit integers: Python/NumPy ints become int32."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)) and np.iinfo(np.int32).min <= int(value) <= np.iinfo(np.int32).max:
        return np.int32(value)
    return value


def build_forecast_dataset(
    values: np.ndarray,
    spec: DataSpec,
    init_times: np.ndarray,
    lead_steps: Sequence[int],
    *,
    source: str,
    history: str,
    trained_steps: int,
    model_ref: str,
    extra_attrs: Mapping[str, Any] | None = None,
    input_metadata: Mapping[str, Any] | None = None,
) -> Any:
    """The CF-1.8 forecast Dataset (the `cf` layout).

    `values`: (n_init, n_lead, C, H, W) in the model's physical units; `lead_steps`: lead
    of each output frame in multiples of the model's time step.
    """
    import xarray as xr

    channels = channel_names(spec)
    units = list(spec.units)
    steps = np.asarray(list(lead_steps), dtype=np.int64)
    coords = _time_coords(spec, np.asarray(init_times), steps)
    space, sp = _space_coords(spec, values.shape[-2], values.shape[-1])
    coords.update(space)
    data_vars = _data_vars(values, channels, units, sp, coords)
    attrs = _global_attrs(spec, channels, steps, trained_steps, source=source, history=history,
                          model_ref=model_ref)
    attrs.update(dict(extra_attrs or {}))
    ds = xr.Dataset(data_vars=data_vars, coords=coords, attrs={k: _cf_attr(v) for k, v in attrs.items()})
    return _keep_input_metadata(_stack_levels(ds, spec), input_metadata or {})


def with_members(datasets: Sequence[Any], ensemble: Mapping[str, Any]) -> Any:
    """One forecast per member -> one Dataset with a `realization` dimension (WeatherBench2's
    name) after the lead time, the member kind and its parameters in the attributes."""
    import xarray as xr

    out = datasets[0].copy()
    for name in datasets[0].data_vars:  # coordinates and attributes are the members' common ones
        out[name] = xr.concat([d[name] for d in datasets], dim="realization")
    out = out.assign_coords(realization=("realization", np.arange(len(datasets), dtype=np.int32),
                                         {"long_name": "ensemble member", "standard_name": "realization"}))
    for name in out.data_vars:
        dims = list(out[name].dims)
        if "realization" in dims and "lead_time" in dims:
            dims.remove("realization")
            dims.insert(dims.index("lead_time") + 1, "realization")
            out[name] = out[name].transpose(*dims)
    out.attrs.update({f"svqcast_ensemble_{k}": _cf_attr(v if not isinstance(v, (list, dict)) else json.dumps(v))
                      for k, v in ensemble.items()})
    return out


def _stack_levels(ds: Any, spec: DataSpec) -> Any:
    """Channels cut from a variable on levels (``t@500``, ``t@850``) back into that variable with
    its level dimension, ``t(time, lead_time, level, lat, lon)``, so a forecast reads like its input."""
    import xarray as xr

    info = spec.levels or {}
    pairs = channel_levels(spec)
    if not info or all(level is None for _, level in pairs):
        return ds
    dim = str(info.get("name") or "level")
    everything = sorted({float(level) for _, level in pairs if level is not None})
    level_attrs = {k: str(info[k]) for k in ("units", "long_name") if info.get(k)}
    out = ds
    for var in dict.fromkeys(v for v, level in pairs if level is not None):
        members = [(ch, level) for ch, (v, level) in zip(channel_names(spec), pairs, strict=True) if v == var]
        stacked = xr.concat([ds[ch] for ch, _ in members], dim=dim).assign_coords({dim: [lv for _, lv in members]})
        stacked = stacked.reindex({dim: everything}).transpose("time", "lead_time", dim, ...)
        stacked.attrs = {**ds[members[0][0]].attrs, "long_name": var}
        out = out.drop_vars([ch for ch, _ in members]).assign({var: stacked})
    out[dim].attrs.update(level_attrs)
    out[dim].attrs.setdefault("axis", "Z")
    return out


def _keep_input_metadata(ds: Any, meta: Mapping[str, Any]) -> Any:
    """The input's own names and attributes win over svqcast's vocabulary: variable standard and
    long names, scalar coordinates, and (in the CF layout) the input's names for lat and lon."""
    for ch, attrs in (meta.get("variables") or {}).items():
        if ch in ds.data_vars:
            ds[ch].attrs.update(attrs)
    for name, (value, attrs) in (meta.get("scalars") or {}).items():
        if name not in ds.variables:
            ds = ds.assign_coords({name: ((), value, attrs)})
    grid = {k: v for k, v in (meta.get("grid") or {}).items() if k in ds.dims and v not in ds.variables}
    if grid:
        ds.attrs["svqcast_input_grid_names"] = " ".join(f"{k}={v}" for k, v in grid.items())
    return ds


def _input_grid_names(ds: Any) -> Any:
    """The CF layout under the input's names for latitude and longitude (`latitude` stays so)."""
    text = str(ds.attrs.pop("svqcast_input_grid_names", ""))
    names = dict(item.split("=", 1) for item in text.split() if "=" in item)
    if not names:
        return ds
    out = ds.rename({k: v for k, v in names.items() if k in ds.dims})
    for old, new in names.items():
        if f"{old}_bnds" in out.variables:
            out = out.rename({f"{old}_bnds": f"{new}_bnds"})
            out[new].attrs["bounds"] = f"{new}_bnds"
    return out


# --------------------------------------------------------------------------- layouts


def to_wb2(ds: Any) -> Any:
    """WeatherBench2 names and order; latitude and longitude ascending."""
    if "lat" not in ds.dims:
        raise UsageError("`layout` wb2 needs a latitude/longitude grid; this model's grid is y/x")
    out = ds.drop_vars([v for v in ("lat_bnds", "lon_bnds", "valid_time") if v in ds.variables])
    out = out.rename({"lead_time": "prediction_timedelta", "lat": "latitude", "lon": "longitude"})
    zdim = next((str(d) for d in out.dims if out[d].attrs.get("axis") == "Z" and d in out.coords), None)
    if zdim is not None and zdim != "level":  # WeatherBench2 calls every vertical coordinate `level`
        out = out.rename({zdim: "level"})
    out = out.sortby("latitude").sortby("longitude")
    for name in ("latitude", "longitude"):
        out[name].attrs.pop("bounds", None)
    out = out.rename({v: WB2_NAMES[str(v)] for v in out.data_vars if str(v) in WB2_NAMES})
    out.attrs["svqcast_layout"] = "wb2"
    return out


def to_valid_time(ds: Any) -> Any:
    """One initialisation with `time` = valid time (what CDO and viewers expect)."""
    if "valid_time" not in ds.coords:
        raise UsageError("`layout` valid-time needs calendar times; this forecast is frame-indexed")
    if ds.sizes["time"] != 1:
        raise UsageError(
            f"`layout` valid-time writes one initialisation, this forecast has {ds.sizes['time']}; "
            "give a single `init_time` (or use the default layout)"
        )
    one = ds.isel(time=0).rename({"time": "forecast_reference_time"})
    one = one.swap_dims({"lead_time": "valid_time"}).rename({"valid_time": "time"})
    one["time"].attrs.update({"standard_name": "time", "long_name": "time the forecast is valid for", "axis": "T"})
    one["forecast_reference_time"].attrs.pop("axis", None)
    one.attrs["svqcast_layout"] = "valid-time"
    return one


def check_layout(layout: str, *, latlon: bool, calendar: bool, n_init: int,
                 fixed_step: bool = True) -> None:
    """Refuse, before any compute, a layout the forecast cannot be written in (exit 2)."""
    if layout not in LAYOUTS:
        raise UsageError(f"`layout` {layout}: unknown; choose one of {', '.join(LAYOUTS)}")
    if layout == "wb2" and not latlon:
        raise UsageError("`layout` wb2 needs a latitude/longitude grid; this model's grid is y/x")
    if layout == "wb2" and not fixed_step:
        raise UsageError("`layout` wb2 stores lead times as fixed durations; this model's steps are calendar "
                         "months or frames: use the default layout")
    if layout == "valid-time" and not calendar:
        raise UsageError("`layout` valid-time needs calendar times; this forecast is frame-indexed")
    if layout == "valid-time" and n_init != 1:
        raise UsageError(
            f"`layout` valid-time writes one initialisation, this forecast has {n_init}; "
            "give a single `init_time` (or use the default layout)"
        )


def apply_layout(ds: Any, layout: str) -> Any:
    if layout == "cf":
        return _input_grid_names(ds)
    if layout == "wb2":  # WeatherBench2's own names (latitude, longitude) whatever the input said
        out = to_wb2(ds)
        out.attrs.pop("svqcast_input_grid_names", None)
        return out
    if layout == "valid-time":
        return _input_grid_names(to_valid_time(ds))
    raise UsageError(f"`layout` {layout}: unknown; choose one of {', '.join(LAYOUTS)}")


# --------------------------------------------------------------------------- encoding


def _datetime_encoding(values: np.ndarray) -> dict[str, Any]:
    """int32 'UNITS since 1970-01-01' with the coarsest unit that keeps every value exact."""
    ns = values.astype("datetime64[ns]").astype(np.int64)
    for unit, size in (("hours", 3_600_000_000_000), ("minutes", 60_000_000_000), ("seconds", 1_000_000_000)):
        if np.all(ns % size == 0) and np.abs(ns // size).max(initial=0) < 2**31:
            return {"units": f"{unit} since 1970-01-01 00:00:00", "calendar": "proleptic_gregorian", "dtype": "int32"}
    return {"units": "seconds since 1970-01-01 00:00:00", "calendar": "proleptic_gregorian", "dtype": "int64"}


def _timedelta_encoding(values: np.ndarray) -> dict[str, Any]:
    ns = values.astype("timedelta64[ns]").astype(np.int64)
    for unit, size in (("hours", 3_600_000_000_000), ("minutes", 60_000_000_000), ("seconds", 1_000_000_000)):
        if np.all(ns % size == 0):
            return {"units": unit, "dtype": "int32"}
    return {"units": "seconds", "dtype": "float64"}


def encoding_for(ds: Any, fmt: str = "netcdf") -> dict[str, dict[str, Any]]:
    """float32 data, one chunk per (initialisation, lead time), int32 times, no coordinate fill."""
    enc: dict[str, dict[str, Any]] = {}
    for name, var in ds.data_vars.items():
        chunks = tuple(1 if d in _TIME_DIMS else var.sizes[d] for d in var.dims)
        if fmt == "zarr":
            enc[str(name)] = {"dtype": "float32", "chunks": chunks, "_FillValue": np.float32(np.nan)}
        else:
            enc[str(name)] = {"zlib": True, "complevel": 4, "shuffle": True, "dtype": "float32",
                              "chunksizes": chunks, "_FillValue": np.float32(np.nan)}
    for name, coord in ds.coords.items():
        enc[str(name)] = {"_FillValue": None}
        if np.issubdtype(coord.dtype, np.datetime64):
            enc[str(name)].update(_datetime_encoding(coord.values))
        elif np.issubdtype(coord.dtype, np.timedelta64):
            enc[str(name)].update(_timedelta_encoding(coord.values))
    return enc


def frames_array(ds: Any) -> np.ndarray:
    """The forecast of the first initialisation as a frame array: (lead, H, W) for one
    channel, (lead, H, W, C) for several (the `.npy` layouts `svqcast prepare` accepts)."""
    names = [str(v) for v in ds.data_vars if ds[v].ndim == 4]
    arr = np.stack([np.asarray(ds[v].isel(time=0).values, dtype=np.float32) for v in names], axis=-1)
    return arr[..., 0] if arr.shape[-1] == 1 else arr


def output_format(path: str | os.PathLike[str]) -> str:
    """'netcdf', 'zarr' or 'npy' from the output's suffix; any other suffix is a usage error (exit 2)."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(
            f"output {path}: unknown suffix '{suffix or '(none)'}'; name it NAME.nc (netCDF), "
            "NAME.zarr (zarr store) or NAME.npy (frames)"
        )
    return FORMATS[suffix]


def check_forecast_output(path: str | os.PathLike[str], *, overwrite: bool, inputs: Sequence[Any] = ()) -> Path:
    """Every refusal about the output before any compute: suffix, existing target, inputs."""

    kind = "dir" if output_format(path) == "zarr" else "file"
    if kind == "dir" and importlib.util.find_spec("zarr") is None:
        raise MissingExtraError("writing a .zarr forecast", "zarr", "zarr")
    return check_output(path, overwrite=overwrite, inputs=inputs, kind=kind)


def write_forecast(ds: Any, path: str | os.PathLike[str], overwrite: bool = False, *, layout: str = "cf",
                   inputs: Sequence[Any] = ()) -> Path:
    """Write `ds` (the `cf` layout) in `layout` to `path` (.nc or .zarr), atomically."""

    path = check_forecast_output(path, overwrite=overwrite, inputs=inputs)
    out = apply_layout(ds, layout)
    if output_format(path) == "npy":  # frame data: (lead, H, W) or (lead, H, W, C), like `prepare` reads
        with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "wb") as fh:
            np.save(fh, frames_array(ds))
        return path
    if output_format(path) == "zarr":
        with atomic_dir(path, overwrite=overwrite) as tmp:
            out.to_zarr(tmp, mode="w", consolidated=True, zarr_format=2, encoding=encoding_for(out, "zarr"))
        return path
    with atomic_path(path, overwrite=overwrite) as tmp:
        out.to_netcdf(tmp, format="NETCDF4", engine="netcdf4", encoding=encoding_for(out))
    return path


__all__ = [
    "CF_NAMES",
    "LAYOUTS",
    "SVQ_REFERENCE",
    "WB2_NAMES",
    "apply_layout",
    "build_forecast_dataset",
    "check_layout",
    "cell_bounds",
    "check_forecast_output",
    "encoding_for",
    "output_format",
    "to_valid_time",
    "to_wb2",
    "write_forecast",
]
