"""Matching a user grid to a target grid (a model's, or a forecast's when scoring).

Coordinates are found by name (lat/latitude, lon/longitude, ...) or CF attributes; either
latitude order and both longitude conventions work; a grid that *contains* the target grid
is cut to it (and a note says so); anything else is refused naming both grids. No
regridding is ever done.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from svqcast.errors import DataError, MismatchError
from svqcast.sources.coords import guess
from svqcast.sources.lexicon import TIME_NAMES


def describe_axis(values: np.ndarray) -> str:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return "(empty)"
    if values.size == 1:
        return f"{values[0]:g} (1 point)"
    step = np.median(np.abs(np.diff(values)))
    return f"{values[0]:g}..{values[-1]:g} ({values.size} points, step {step:g})"


def match_axis(model: np.ndarray, given: np.ndarray, periodic: bool) -> np.ndarray | None:
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


def time_dims(da: Any) -> list[str]:
    """Dimensions of `da` that are time: a known name, or a datetime64/cftime coordinate."""
    out = []
    for d in da.dims:
        if str(d).lower() in TIME_NAMES:
            out.append(d)
        elif d in da.coords and (
            np.issubdtype(da[d].dtype, np.datetime64)
            or (da[d].dtype == object and da[d].size and hasattr(da[d].values.flat[0], "calendar"))
        ):
            out.append(d)
    return out


def latlon_selection(
    ds: Any, dims: Sequence[str], coords: Mapping[str, Any], src: str, notes: list[str], target: str = "model"
) -> tuple[dict[str, Any], tuple[str, str]]:
    """isel indexers that cut/reorder/wrap a lat-lon input onto the `target`'s lat-lon grid
    (`dims`: the target's two dimension names, `coords`: their coordinate values)."""
    lat_name, lon_name = guess(ds, "lat"), guess(ds, "lon")
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
    i_lat = match_axis(m_lat, lat_v, periodic=False)
    i_lon = match_axis(m_lon, lon_v, periodic=True)
    if i_lat is None or i_lon is None:
        raise MismatchError(
            f"{src}: grid mismatch: the input grid (lat {describe_axis(lat_v)}, lon "
            f"{describe_axis(lon_v)}) does not contain the {target} grid (lat {describe_axis(m_lat)}, "
            f"lon {describe_axis(m_lon)}); regrid the input"
            + (" or use a model trained on this grid" if target == "model" else "")
        )
    if len(lat_v) > 1 and lat_v[0] != lat_v[-1] and (lat_v[-1] > lat_v[0]) != (m_lat[-1] > m_lat[0]):
        notes.append(f"latitude order reversed to match the {target}")
    if np.any(lon_v > 180.0) != np.any(m_lon > 180.0):
        notes.append(f"longitudes wrapped to the {target}'s convention")
    if lat_v.size != m_lat.size or lon_v.size != m_lon.size:
        notes.append(
            f"input grid (lat {describe_axis(lat_v)}, lon {describe_axis(lon_v)}) cut to the {target} "
            f"grid (lat {describe_axis(m_lat)}, lon {describe_axis(m_lon)})"
        )
    return {lat_dim: i_lat, lon_dim: i_lon}, (lat_dim, lon_dim)


def spatial_selection(
    ds: Any, da: Any, dims: Sequence[str], coords: Mapping[str, Any], src: str, notes: list[str],
    target: str = "model",
) -> tuple[dict[str, Any], tuple[str, str]]:
    """isel indexers that put `da` on the target grid, plus the (y, x) dim names of `da`."""
    dims = list(dims)
    if dims and dims[0] in ("lat", "latitude"):
        return latlon_selection(ds, dims, coords, src, notes, target)
    # generic y/x grid: same size, or a contained sub-grid when both sides have coordinates
    y_name, x_name = (dims + ["y", "x"])[:2] if len(dims) >= 2 else ("y", "x")
    sp_dims = [d for d in da.dims if d not in time_dims(da)]
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
            idx = match_axis(np.asarray(model_vals, float), np.asarray(ds[dim].values, float), False)
            if idx is None:
                raise MismatchError(
                    f"{src}: grid mismatch on {name}: input {describe_axis(ds[dim].values)}, "
                    f"{target} {describe_axis(np.asarray(model_vals, float))}"
                )
            sel[dim] = idx
        elif n_model is not None and size != n_model:
            raise MismatchError(f"{src}: grid mismatch: input {name} has {size} points, the {target} has {n_model}")
    return sel, (ydim, xdim)


__all__ = ["describe_axis", "latlon_selection",
           "match_axis", "spatial_selection", "time_dims"]
