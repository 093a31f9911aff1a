"""One reader for forecast files, whatever wrote them: a single internal view for scoring.

Layouts recognised (netCDF, zarr, GRIB, or a directory of them, via `svqcast.sources.opener.open_dataset`):

* svqcast's own: ``(time, lead_time, lat, lon)``, `time` the initialisation;
* WeatherBench2: ``(time, prediction_timedelta, latitude, longitude)`` (also ``init_time``);
* GRIB forecasts as cfgrib reads them: ``(time, step, latitude, longitude)``;
* valid time: ``time`` = valid time plus a scalar ``forecast_reference_time`` (one
  initialisation; what ``svqcast predict --layout valid-time`` and many tools write).

Whatever the layout, `ForecastView` holds every field as ``(init, lead, y, x)`` (one per level of a
variable with a level dimension, named ``variable@level``); the
grid keeps its file order and its coordinate values so truth can be matched to it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from svqcast.errors import DataError, UsageError
from svqcast.sources.coords import apply_coords, guess
from svqcast.sources.leadtime import format_hours, step_label
from svqcast.sources.levels import level_label
from svqcast.sources.lexicon import INIT_NAMES, LEAD_NAMES
from svqcast.sources.opener import open_dataset
from svqcast.sources.timeaxis import validate_time_axis

_REF_COORDS = ("forecast_reference_time", "init_time", "reference_time", "initialization_time")


@dataclass
class ForecastView:
    """A forecast as ``(init, lead, y, x)`` DataArrays (lazy), plus its axes.

    `data` is keyed by field: the variable name, or ``variable@level`` for each level of a
    variable with a level dimension (``geopotential@500``)."""

    source: str
    layout: str
    data: dict[str, Any]
    inits: np.ndarray  # datetime64[ns], or int64 frame indices
    leads: np.ndarray  # timedelta64[ns], or int64 model steps
    y: np.ndarray
    x: np.ndarray
    latlon: bool
    notes: list[str] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)  # the file's global attributes
    handle: Any = None  # the opened Dataset, closed by `close`
    valid: np.ndarray | None = None  # (init, lead) valid times: the file's own, or init + lead
    step_unit: tuple[int, str] | None = None  # leads counted in steps: (size, "months"|"years"|"frames")
    skipped: dict[str, str] = field(default_factory=dict)  # variables that cannot be scored, and why

    def members(self, key: str) -> int:
        """Ensemble members of a field (its `realization`/`member`/`number` dimension); 0: deterministic."""
        da = self.data[key]
        return int(da.shape[2]) if da.ndim == 5 else 0

    def field_of(self, key: str) -> tuple[str, float | None]:
        """(variable, level) of a field of `data` (level None for a variable without levels)."""
        return parse_field(key)

    def valid_times(self, i: int) -> np.ndarray:
        """The valid times of initialisation `i` (frame indices for frame data)."""
        if self.valid is not None:
            return self.valid[i]
        return self.inits[i] + self.leads

    def lead_labels(self) -> list[str]:
        """Leads in their own unit: "6h", "3 months", "2 frames" (never 8765.82 h)."""
        if np.issubdtype(self.leads.dtype, np.timedelta64):
            return [format_hours(float(v / np.timedelta64(1, "h"))) for v in self.leads]
        return [step_label(int(n), self.step_unit or (1, "steps")) for n in self.leads]

    @property
    def calendar(self) -> bool:
        return bool(np.issubdtype(self.inits.dtype, np.datetime64))

    def lead_seconds(self) -> list[float | None]:
        if not np.issubdtype(self.leads.dtype, np.timedelta64):
            return [None] * self.leads.size
        return [float(v / np.timedelta64(1, "s")) for v in self.leads]

    @property
    def model(self) -> str:
        """The model that wrote the file, when svqcast did."""
        return str(self.attrs.get("svqcast_model", ""))

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()

    def units(self, name: str) -> str | None:
        value = self.data[name].attrs.get("units")
        return None if value is None else str(value)


def _first(names: Sequence[str], present: Sequence[Any]) -> str | None:
    lower = {str(p).lower(): str(p) for p in present}
    return next((lower[n] for n in names if n in lower), None)


def _from_valid_time(ds: Any, src: str) -> tuple[Any, str]:
    """A valid-time file (one initialisation) -> dims (time=init, lead_time)."""
    ref = _first(_REF_COORDS, list(ds.coords))
    tdim = _first(("time", "valid_time"), list(ds.dims))
    if ref is None or tdim is None or ds[ref].ndim != 0:
        raise DataError(
            f"{src}: not a forecast file: no lead-time dimension (lead_time, prediction_timedelta, step) "
            "and no scalar forecast_reference_time; is this the truth file?"
        )
    init = np.asarray(ds[ref].values).astype("datetime64[ns]")
    valid = np.asarray(ds[tdim].values).astype("datetime64[ns]")
    out = ds.drop_vars([c for c in ds.coords if c in ("lead_time", "forecast_period") and c != tdim])
    out = out.assign_coords({tdim: valid - init}).rename({tdim: "lead_time"})
    out = out.drop_vars(ref).expand_dims(time=[init])
    return out, "valid-time"


def _normalise_dims(ds: Any, src: str) -> tuple[Any, str, str, str]:
    """(dataset, layout, init dim, lead dim) for any supported layout."""
    dims = list(ds.dims)
    lead = _first(LEAD_NAMES, dims)
    if lead is None:
        ds, layout = _from_valid_time(ds, src)
        return ds, layout, "time", "lead_time"
    layout = {"lead_time": "svqcast", "prediction_timedelta": "wb2", "step": "grib"}.get(lead, "other")
    init = _first(INIT_NAMES, dims)
    if init is None:
        ref = _first(INIT_NAMES, list(ds.coords))
        if ref is None or ds[ref].ndim != 0:
            raise DataError(f"{src}: the forecast has a '{lead}' dimension but no initialisation time")
        ds = ds.expand_dims(ref)
        init = ref
    return ds, layout, init, lead


def _spatial_dims(ds: Any, src: str) -> tuple[str, str, bool]:
    lat, lon = guess(ds, "lat"), guess(ds, "lon")
    if lat is not None and lon is not None and ds[lat].ndim == 1 and ds[lon].ndim == 1:
        return str(ds[lat].dims[0]), str(ds[lon].dims[0]), True
    if "y" in ds.dims and "x" in ds.dims:
        return "y", "x", False
    raise DataError(f"{src}: cannot find the forecast's grid (lat/latitude and lon/longitude, or y/x)")


def _leads(values: np.ndarray, src: str) -> np.ndarray:
    if np.issubdtype(values.dtype, np.timedelta64):
        return values.astype("timedelta64[ns]")
    if np.issubdtype(values.dtype, np.integer) or (
        np.issubdtype(values.dtype, np.floating) and np.all(values == np.round(values))
    ):
        return values.astype(np.int64)
    raise DataError(f"{src}: lead times must be time spans or whole model steps, got {values.dtype}")


def parse_field(text: str) -> tuple[str, float | None]:
    """``geopotential@500`` -> ("geopotential", 500.0); ``t2m`` -> ("t2m", None)."""
    name, sep, level = str(text).rpartition("@")
    if not sep:
        return str(text), None
    try:
        return name, float(level)
    except ValueError:
        raise UsageError(f"`variables` {text!r}: the part after @ must be a level value (e.g. geopotential@500)"
                         ) from None


def _fields_of(name: str, da: Any, dims: tuple[str, str, str, str], ds: Any) -> tuple[dict[str, Any], str | None]:
    """The (init, lead, y, x) fields of one variable, one per level; or ({}, why it is not scored)."""
    if not np.issubdtype(da.dtype, np.number) or np.issubdtype(da.dtype, np.timedelta64):
        return {}, f"not numeric ({da.dtype})"
    if not set(dims) <= set(da.dims):
        return {}, f"not on the forecast's (init, lead, grid) dimensions (its dims: {', '.join(map(str, da.dims))})"
    extra = [str(d) for d in da.dims if d not in dims]
    level = guess(ds, "level", among=extra) if extra else None
    member = guess(ds, "member", among=[d for d in extra if d != level and da.sizes[d] > 1]) if extra else None
    wide = [d for d in extra if d not in (level, member) and da.sizes[d] != 1]
    if wide:
        return {}, f"has a dimension svqcast does not score over ({wide[0]}, size {da.sizes[wide[0]]})"
    da = da.isel({d: 0 for d in extra if d not in (level, member)})
    order = (*dims[:2], *([member] if member else []), *dims[2:])  # members after the lead: (init, lead, M, y, x)
    if level is None:
        return {name: da.transpose(*order)}, None
    values = np.asarray(ds[level].values if level in ds.coords else np.arange(da.sizes[level]), dtype=np.float64)
    return {level_label(name, float(v)): da.isel({level: k}).transpose(*order) for k, v in enumerate(values)}, None


def _select_variables(ds: Any, dims: tuple[str, str, str, str], wanted: Sequence[str] | None,
                      src: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Every field of the file (a levelled variable gives one per level) and, by name, the
    variables that cannot be scored with the reason; `wanted` picks variables or var@level."""
    found: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for name, da in ds.data_vars.items():
        fields, why = _fields_of(str(name), da, dims, ds)
        found.update(fields)
        if why:
            skipped[str(name)] = why
    if not found:
        why = "; ".join(f"{k}: {v}" for k, v in skipped.items())
        raise DataError(f"{src}: no variable has the dimensions {', '.join(dims)}" + (f" ({why})" if why else ""))
    if not wanted:
        return found, skipped
    picked: dict[str, Any] = {}
    for w in wanted:
        name, level = parse_field(w)
        keys = [k for k in found if parse_field(k)[0] == name and (level is None or parse_field(k)[1] == level)]
        if not keys:
            raise UsageError(_not_found(w, name, found, skipped, src))
        picked.update({k: found[k] for k in keys})
    return picked, {}


def _not_found(wanted: str, name: str, found: Mapping[str, Any], skipped: Mapping[str, str], src: str) -> str:
    if name in skipped:
        return f"`variables`: {name} in {src} cannot be scored: {skipped[name]}"
    levels = [k.rpartition("@")[2] for k in found if parse_field(k)[0] == name]
    if levels:
        return f"`variables`: {wanted} is not in {src}; {name} has the levels {', '.join(levels)}"
    names = list(dict.fromkeys(parse_field(k)[0] for k in found))
    return f"`variables`: {wanted} not in {src} (it has {', '.join(names)})"


def open_forecast(path: str | os.PathLike[str] | Any, variables: Sequence[str] | None = None,
                  coords: Mapping[str, str] | None = None, *, strict: bool = True) -> ForecastView:
    """Open a forecast file or store (or take an xarray Dataset) as a `ForecastView`; `coords`
    ({role: name}) renames coordinates the guesser would miss."""
    import xarray as xr

    src = str(path) if not isinstance(path, xr.Dataset) else "forecast dataset"
    ds = apply_coords(path, coords or {}, src, strict=strict) if isinstance(path, xr.Dataset) else open_dataset(
        path, coords, strict=strict)
    ds, layout, init, lead = _normalise_dims(ds, src)
    ydim, xdim, latlon = _spatial_dims(ds, src)
    data, skipped = _select_variables(ds, (init, lead, ydim, xdim), variables, src)
    axis = validate_time_axis(ds[init].values, what=f"{src}: {init}", attrs=ds[init].attrs,
                              encoding=ds[init].encoding, allow_frames=True)
    leads = _leads(np.asarray(ds[lead].values), src) if lead in ds.coords else np.arange(1, ds.sizes[lead] + 1)
    y = np.asarray(ds[ydim].values) if ydim in ds.coords else np.arange(ds.sizes[ydim])
    x = np.asarray(ds[xdim].values) if xdim in ds.coords else np.arange(ds.sizes[xdim])
    valid, unit = _valid_times(ds, init, lead, axis.values, leads, src)
    return ForecastView(src, layout, data, axis.values, leads, y, x, latlon, list(axis.notes), dict(ds.attrs), ds,
                        valid, unit, skipped)


def _valid_times(ds: Any, init: str, lead: str, inits: np.ndarray, leads: np.ndarray,
                 src: str) -> tuple[np.ndarray | None, tuple[int, str] | None]:
    """Explicit valid times where leads are counted in calendar steps (monthly, yearly), and the
    unit of counted leads; None where init + lead is the valid time."""
    attrs = ds[lead].attrs if lead in ds.variables else {}
    unit = attrs.get("svqcast_step_unit")
    counted = None if unit is None else (int(attrs.get("svqcast_step_size", 1)), str(unit))
    calendar = np.issubdtype(inits.dtype, np.datetime64)
    if not calendar or np.issubdtype(leads.dtype, np.timedelta64):
        return None, counted or (None if calendar else (1, "frames"))
    if "valid_time" in ds.coords and tuple(ds["valid_time"].dims) == (init, lead):
        return np.asarray(ds["valid_time"].values).astype("datetime64[ns]"), counted or (1, "steps")
    raise DataError(f"{src}: lead times are step counts but the file has no valid_time (init, lead) "
                    "coordinate to say when each lead is valid")


__all__ = ["ForecastView", "open_forecast", "parse_field"]
