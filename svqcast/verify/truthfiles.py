"""The observations and climatologies a forecast file is scored against, cut to its grid.

`open_truth` finds a forecast field's variable (and level) in the truth file, on the forecast's
grid, with a valid time -> index lookup; `open_climatology` does the same for a climatology
file (WeatherBench2's (dayofyear, hour) layout, one field per valid time, or one static
field). `in_forecast_units` converts units where that is unambiguous and refuses the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from svqcast.errors import DataError
from svqcast.forecast.inputs import squeeze_extra
from svqcast.sources.cf import mask_invalid
from svqcast.sources.forecast_files import ForecastView
from svqcast.sources.grid import spatial_selection, time_dims
from svqcast.sources.levels import pick_level
from svqcast.sources.lexicon import resolve_variables
from svqcast.sources.timeaxis import time_axis_of
from svqcast.units import convert_units, implausible, is_physical


def forecast_grid(fv: ForecastView) -> tuple[list[str], dict[str, Any]]:
    """The forecast's grid as (dims, coords): what truth and climatology are cut to."""
    dims = ["lat", "lon"] if fv.latlon else ["y", "x"]
    return dims, {dims[0]: fv.y.tolist(), dims[1]: fv.x.tolist()}


@dataclass
class Truth:
    """One truth field cut to the forecast grid, with a time -> index lookup."""

    da: Any
    tdim: str
    isel: dict[str, Any]
    dims: tuple[str, str]
    pos: dict[int, int]
    units: str | None
    name: str

    def _index(self, times: np.ndarray) -> np.ndarray:
        keys = times.astype("datetime64[ns]").astype(np.int64) if times.dtype.kind == "M" else times.astype(np.int64)
        return np.array([self.pos.get(int(k), -1) for k in keys], dtype=np.int64)

    def found(self, times: np.ndarray) -> np.ndarray:
        """Which of `times` the truth has (nothing read)."""
        return self._index(times) >= 0

    def frames(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(values (n_found, H, W) float64 with NaN where invalid, mask of `times` found)."""
        idx = self._index(times)
        mask = idx >= 0
        if not mask.any():
            return np.empty((0,)), mask
        import xarray as xr

        sub = self.da.isel({self.tdim: xr.DataArray(idx[mask], dims="_t"), **self.isel})
        return mask_invalid(np.asarray(sub.transpose("_t", *self.dims).values, dtype=np.float64), self.da), mask


def open_truth(tds: Any, var: str, level: float | None, fv: ForecastView, src: str, notes: list[str]) -> Truth:
    name = resolve_variables(tds, [var], {}, src)[var]
    da = pick_level(tds, tds[name], level, name, src)
    tdims = time_dims(da)
    if not tdims:
        raise DataError(f"{src}: variable '{name}' has no time dimension; truth must cover the valid times")
    isel, dims = spatial_selection(tds, da, *forecast_grid(fv), src, notes, target="forecast")
    da = squeeze_extra(da, (tdims[0], *dims), name, src)
    axis = time_axis_of(da, tdims[0], source=src, allow_frames=not fv.calendar)
    notes.extend(axis.notes)
    if axis.is_datetime != fv.calendar:
        raise DataError(f"{src}: the truth's time axis is {'dates' if axis.is_datetime else 'frames'}, "
                        f"the forecast's is {'dates' if fv.calendar else 'frames'}; they cannot be matched")
    pos = {int(k): i for i, k in enumerate(axis.values.astype(np.int64))}
    units = da.attrs.get("units")
    return Truth(da, tdims[0], isel, dims, pos, None if units is None else str(units), name)


@dataclass
class ClimatologyFile:
    """A climatology on the forecast grid: WeatherBench2-style (dayofyear, hour), by valid time,
    or one static field."""

    da: Any
    kind: str  # "dayofyear" | "time" | "static"
    isel: dict[str, Any]
    dims: tuple[str, str]
    pos: dict[int, int]
    src: str
    units: str | None = None

    def at(self, valid: np.ndarray) -> np.ndarray:
        import pandas as pd
        import xarray as xr

        sub = self.da.isel(self.isel)
        if self.kind == "static":
            field_ = np.asarray(sub.transpose(*self.dims).values, dtype=np.float64)
            return np.broadcast_to(field_, (valid.size, *field_.shape))
        if self.kind == "time":
            idx = [self.pos.get(int(k), -1) for k in valid.astype("datetime64[ns]").astype(np.int64)]
            if min(idx) < 0:
                missing = valid[int(np.argmin(idx))]
                raise DataError(f"{self.src}: the climatology has no field for {str(missing)[:19]}")
            picked = sub.isel({str(time_dims(sub)[0]): xr.DataArray(idx, dims="_t")})
        else:
            stamps = pd.DatetimeIndex(valid)
            keys = {"dayofyear": xr.DataArray(stamps.dayofyear.values, dims="_t")}
            if "hour" in sub.dims:
                keys["hour"] = xr.DataArray(stamps.hour.values, dims="_t")
            try:
                picked = sub.sel(keys)
            except KeyError:
                raise DataError(f"{self.src}: the climatology lacks a day of year or hour of the valid times "
                                f"({str(valid[0])[:16]} ..)") from None
        return np.asarray(picked.transpose("_t", *self.dims).values, dtype=np.float64)


def open_climatology(cds: Any, var: str, level: float | None, fv: ForecastView, src: str,
                     notes: list[str]) -> ClimatologyFile:
    name = resolve_variables(cds, [var], {}, src)[var]
    da = pick_level(cds, cds[name], level, name, src)
    isel, dims = spatial_selection(cds, da, *forecast_grid(fv), src, notes, target="forecast")
    extra = [d for d in da.dims if d not in (*dims, "dayofyear", "hour") and d not in time_dims(da)]
    da = da.isel({d: 0 for d in extra if da.sizes[d] == 1})
    units = None if da.attrs.get("units") is None else str(da.attrs["units"])
    if "dayofyear" in da.dims:
        return ClimatologyFile(da, "dayofyear", isel, dims, {}, src, units)
    if time_dims(da):
        axis = time_axis_of(da, str(time_dims(da)[0]), source=src)
        pos = {int(k): i for i, k in enumerate(axis.values.astype(np.int64))}
        return ClimatologyFile(da, "time", isel, dims, pos, src, units)
    return ClimatologyFile(da, "static", isel, dims, {}, src, units)


def in_forecast_units(values: np.ndarray, src_units: str | None, dst: str | None, name: str, notes: list[str],
                      what: str = "truth") -> np.ndarray:
    """`values` of the truth (or climatology) in the forecast's units, converted where that is
    unambiguous; missing units where the forecast has them, and implausible values, are refused."""
    if dst is None:
        return values
    if src_units is None and is_physical(dst):
        raise DataError(f"the {what} of '{name}' has no units attribute while the forecast is in {dst}; "
                        "set the units of the file (svqcast never guesses them)")
    if src_units is None:
        return values
    out, note = convert_units(values, src_units, dst, name)
    if note:
        notes.append(note)
    if (why := implausible(out, dst)) is not None:
        raise DataError(f"the {what} of '{name}' {why} after conversion from '{src_units}' to {dst}; "
                        "check its units attribute")
    return np.asarray(out, dtype=np.float64)


__all__ = ["ClimatologyFile", "Truth", "forecast_grid", "in_forecast_units", "open_climatology", "open_truth"]
