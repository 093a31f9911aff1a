"""Gridded fields (netCDF / zarr / GRIB through xarray) -> a lazy `Source`.

Coordinates are found by common names and CF attributes; singleton extra dimensions (one
pressure level, one ensemble member) are squeezed; a variable on several levels needs
`--levels` (some or all of them: one channel per level, named ``t@850``, its variable and level
recorded) or `--level` (one level, the channel keeps the variable's name). Missing values
(NaN, `_FillValue`) are kept as NaN: the store writer masks cells that never hold data and
refuses other gaps (svqcast.data.missing). Files of
a directory or glob may split the data by time (per-year files) or by variable; each
variable's pieces are put in time order and every variable must cover the same times.
The grid is kept exactly as the file has it: latitude order and longitude convention.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from svqcast.errors import DataError, UsageError
from svqcast.sources.cf import mask_invalid
from svqcast.sources.coords import guess
from svqcast.sources.levels import level_index, level_label
from svqcast.sources.lexicon import GRID_X_NAMES as LON_NAMES
from svqcast.sources.lexicon import GRID_Y_NAMES as LAT_NAMES
from svqcast.sources.lexicon import LEVEL_NAMES
from svqcast.sources.remote_zarr import guarded
from svqcast.sources.source import URL_HINT, Source
from svqcast.sources.timeaxis import time_axis_of


@dataclass
class _Piece:
    """One variable in one file: a lazy DataArray (time, y, x) and its decoded times."""

    da: Any
    times: np.ndarray
    path: str
    time: Any = None  # the time coordinate as read (its calendar)


def _time_dim(ds: Any, da: Any) -> str | None:
    return guess(ds, "time", among=da.dims)


def _grid_axis(ds: Any, dims: list[str], geographic: str, plain: str) -> str | None:
    """The latitude (longitude) dimension among `dims`, else a plain y (x) axis."""
    return guess(ds, geographic, among=dims) or guess(ds, plain, among=dims)


def _candidates(ds: Any) -> list[str]:
    """Data variables with a time dimension and at least two other dimensions."""
    out = []
    for name, da in ds.data_vars.items():
        if _time_dim(ds, da) is not None and da.ndim >= 3 and not str(name).endswith(("_bnds", "_bounds")):
            out.append(str(name))
    return out


Levels = Sequence[float] | str | None  # values, "all", or None


def _select(ds: Any, name: str, level: float | None, levels: Levels, path: str,
            notes: list[str]) -> tuple[list[tuple[str, float | None, Any]], str, str, str, str | None]:
    """([(channel, level, da as (time, y, x))], time dim, y dim, x dim, level dim): one channel
    per chosen level of a variable on levels (`levels`), else the variable itself."""
    da = ds[name]
    tdim = _time_dim(ds, da)
    assert tdim is not None
    rest = [str(d) for d in da.dims if d != tdim]
    for d in list(rest):
        if da.sizes[d] == 1 and len(rest) > 2:
            da = da.isel({d: 0}, drop=True)
            rest.remove(d)
            notes.append(f"{name}: singleton dimension '{d}' squeezed")
    lev = next((d for d in rest if d.lower() in LEVEL_NAMES and len(rest) > 2), None)
    picked: list[tuple[str, float | None, Any]] = [(name, None, da)]
    if lev is not None:
        rest.remove(lev)
        picked = _pick_levels(da, lev, level, levels, name, path)
    elif level is not None:
        raise UsageError(f"{path}: `level` {level:g} given but {name!r} has no level dimension (dims {rest})")
    if len(rest) != 2:
        extra = [d for d in rest if d.lower() not in LAT_NAMES + LON_NAMES]
        raise DataError(f"{path}: {name!r} has extra dimension(s) {extra} of size > 1; select one "
                        f"(e.g. ds.isel({extra[0] if extra else rest[0]}=0)) before prepare")
    y = _grid_axis(ds, rest, "lat", "y") or rest[0]
    x = _grid_axis(ds, [d for d in rest if d != y], "lon", "x") or [d for d in rest if d != y][0]
    return [(ch, lv, d.transpose(tdim, y, x)) for ch, lv, d in picked], tdim, y, x, lev


def _pick_levels(da: Any, dim: str, level: float | None, levels: Levels, name: str,
                 path: str) -> list[tuple[str, float | None, Any]]:
    values = [float(v) for v in (np.asarray(da[dim].values) if dim in da.coords else range(da.sizes[dim]))]
    shown = ", ".join(f"{v:g}" for v in values)
    if level is None and levels is None:
        raise UsageError(f"{path}: {name!r} has {len(values)} levels ({shown}); choose them with `levels` "
                         "(500,850 or all)")
    if level is not None:
        return [(name, None, da.isel({dim: level_index(values, level, name, path)}, drop=True))]
    wanted = values if isinstance(levels, str) else [float(v) for v in (levels or [])]
    return [(level_label(name, v), v, da.isel({dim: level_index(values, v, name, path)}, drop=True))
            for v in wanted]


def fields_source(arg: str, paths: list[str], datasets: list[Any], variables: list[str] | None,
                  level: float | None, levels: Levels = None) -> Source:
    notes: list[str] = []
    wanted = _wanted(arg, datasets, variables)
    pieces: dict[str, list[_Piece]] = {}
    grid: tuple[str, str, Any, Any] | None = None
    info: dict[str, tuple[str, float | None, str | None, dict[str, Any]]] = {}  # channel -> var, level, dim, attrs
    for path, ds in zip(paths, datasets, strict=True):
        for name in wanted:
            if name not in ds.data_vars:
                continue
            picked, tdim, y, x, lev = _select(ds, name, level, levels, path, notes)
            axis = time_axis_of(ds, tdim, source=path)
            notes += list(axis.notes)
            for channel, lv, da in picked:
                if pieces.get(channel):
                    _same_kind(pieces[channel][0], da, ds[tdim], name, path)
                pieces.setdefault(channel, []).append(_Piece(da, axis.values, path, ds[tdim]))
                info.setdefault(channel, (name, lv, lev, dict(ds[lev].attrs) if lev and lev in ds.coords else {}))
            grid = _same_grid(grid, ds, y, x, path)
    if grid is None:
        raise DataError(f"{arg}: no variable with a time dimension and a 2-D grid")
    times = _join_times(arg, pieces)
    y, x, yv, xv = grid
    dims = ("lat", "lon") if y.lower() in LAT_NAMES[:3] and x.lower() in LON_NAMES[:3] else ("y", "x")
    channels = list(pieces)
    units, long_names = [], []
    for channel in channels:
        attrs = pieces[channel][0].da.attrs
        if not attrs.get("units"):
            notes.append(f"{channel}: no units attribute; recorded as unknown")
        units.append(str(attrs.get("units") or "unknown"))
        long_names.append(str(attrs.get("long_name") or attrs.get("standard_name") or info[channel][0]))
    return Source(
        path=arg, kind="weather", frames=FieldFrames([pieces[c] for c in channels], channels, times), times=times,
        channels=channels, units=units, long_names=long_names, dims=dims,
        coords={dims[0]: yv, dims[1]: xv},
        coord_units={dims[0]: "degrees_north" if dims[0] == "lat" else "1",
                     dims[1]: "degrees_east" if dims[1] == "lon" else "1"},
        files=list(paths), notes=list(dict.fromkeys(notes)), levels=_levels_info(channels, info),
    )


def _levels_info(channels: list[str], info: dict[str, Any]) -> dict[str, Any] | None:
    """DataSpec.levels: each channel's (variable, level), and the level coordinate's name and units."""
    if all(info[c][1] is None for c in channels):
        return None
    dim, attrs = next((info[c][2], info[c][3]) for c in channels if info[c][1] is not None)
    return {"name": "level" if str(dim).lower() in ("isobaricinhpa", "plev", "lev", "pressure_level") else str(dim),
            "units": str(attrs.get("units") or ""), "long_name": str(attrs.get("long_name") or ""),
            "channels": [[info[c][0], info[c][1]] for c in channels]}


def _wanted(arg: str, datasets: list[Any], variables: list[str] | None) -> list[str]:
    have: list[str] = []
    for ds in datasets:
        have += [v for v in _candidates(ds) if v not in have]
    if variables:
        missing = [v for v in variables if v not in have]
        if missing:
            listed = ", ".join(have) or "none with a time dimension"
            raise DataError(f"{arg}: variable(s) {', '.join(missing)} not found (available: {listed})")
        return list(variables)
    if not have:
        names = ", ".join(str(v) for ds in datasets for v in ds.data_vars) or "none"
        raise DataError(f"{arg}: no time dimension: no variable has a time axis and a 2-D grid "
                        f"(variables: {names}); add a time dimension (CF units) to the file")
    return have


def _coord(ds: Any, dim: str) -> np.ndarray:
    if dim in ds.coords:
        return np.asarray(ds[dim].values, dtype=np.float64)
    return np.arange(ds.sizes[dim], dtype=np.float64)


def _same_kind(first: _Piece, da: Any, time: Any, name: str, path: str) -> None:
    """The files of one variable must agree on its units and on the calendar of their times:
    merging K with degC (or noleap with gregorian days) would give wrong numbers silently."""
    units = (str(first.da.attrs.get("units", "")), str(da.attrs.get("units", "")))
    if units[0] != units[1]:
        raise DataError(f"{path}: '{name}' is in {units[1] or 'no units'} here but in {units[0] or 'no units'} "
                        f"in {first.path}; convert the files to one unit first")
    calendars = [str(t.encoding.get("calendar", t.attrs.get("calendar", "standard"))).lower()
                 for t in (first.time, time)]
    gregorian = {"standard", "gregorian", "proleptic_gregorian"}
    if calendars[0] != calendars[1] and not {calendars[0], calendars[1]} <= gregorian:
        raise DataError(f"{path}: its time axis uses the '{calendars[1]}' calendar, {first.path} the "
                        f"'{calendars[0]}' one; give files of one calendar")


def _check_axis(values: np.ndarray, name: str, latitude: bool, path: str) -> None:
    """Coordinates that cannot be a grid: NaN, latitudes beyond +-90, repeated or unordered values."""
    if not np.isfinite(values).all():
        raise DataError(f"{path}: coordinate '{name}' has missing (NaN) values; fix the file's grid")
    if latitude and np.abs(values).max() > 90:
        raise DataError(f"{path}: latitude '{name}' reaches {values[np.argmax(np.abs(values))]:g}, beyond +-90")
    steps = np.diff(values)
    if values.size > 1 and not ((steps > 0).all() or (steps < 0).all()):
        kind = "repeats a value" if (steps == 0).any() else "is not monotonic"
        raise DataError(f"{path}: coordinate '{name}' {kind}; a grid axis must be strictly increasing or "
                        "decreasing")


def _same_grid(grid: Any, ds: Any, y: str, x: str, path: str) -> tuple[str, str, Any, Any]:
    yv, xv = _coord(ds, y), _coord(ds, x)
    if grid is None:
        _check_axis(yv, y, y.lower() in LAT_NAMES[:4], path)
        _check_axis(xv, x, False, path)
        return y, x, yv, xv
    if grid[2].shape != yv.shape or grid[3].shape != xv.shape or not (
            np.allclose(grid[2], yv) and np.allclose(grid[3], xv)):
        raise DataError(f"{path}: its grid differs from the first file's ({len(yv)}x{len(xv)} vs "
                        f"{len(grid[2])}x{len(grid[3])}); regrid the files to one grid first")
    return grid


def _join_times(arg: str, pieces: dict[str, list[_Piece]]) -> np.ndarray:
    first: np.ndarray | None = None
    for name, parts in pieces.items():
        parts.sort(key=lambda p: p.times[0] if len(p.times) else np.datetime64("NaT"))
        t = np.concatenate([p.times for p in parts])
        if first is None:
            first = t
        elif t.shape != first.shape or np.any(t != first):
            raise DataError(f"{arg}: variable {name!r} covers other times than {next(iter(pieces))!r}; "
                            "every variable must cover the same time steps")
    assert first is not None
    return first


class FieldFrames:
    """(time, C, H, W) float32 blocks read lazily from each variable's pieces."""

    def __init__(self, channels: list[list[_Piece]], names: list[str], times: np.ndarray) -> None:
        self.channels = channels
        self.names = names
        self.times = times
        self.starts = [np.concatenate([[0], np.cumsum([len(p.times) for p in parts])]).astype(np.int64)
                       for parts in channels]

    def __len__(self) -> int:
        return int(self.starts[0][-1])

    @property
    def time_chunk(self) -> int | None:
        """Frames per chunk along time of the first variable's file storage (netCDF/HDF5 or zarr),
        when it is chunked along time and every piece starts on a chunk: reads aligned to it
        decode each stored chunk once."""
        sizes = set()
        for parts in self.channels:
            for piece in parts:
                enc = piece.da.encoding
                chunks = enc.get("chunksizes") or enc.get("chunks") or enc.get("preferred_chunks", {}).get(
                    piece.da.dims[0])
                first = chunks[0] if isinstance(chunks, (tuple, list)) and chunks else chunks
                if not isinstance(first, (int, np.integer)) or first < 1:
                    return None
                sizes.add(int(first))
        starts_ok = all(int(v) % min(sizes) == 0 for st in self.starts for v in st[:-1]) if sizes else False
        return max(sizes) if sizes and len(sizes) == 1 and starts_ok else None

    def __getitem__(self, sl: slice) -> np.ndarray:
        a, b, _ = sl.indices(len(self))
        out = []
        for parts, starts, name in zip(self.channels, self.starts, self.names, strict=True):
            blocks = []
            for k, piece in enumerate(parts):
                lo, hi = max(a, starts[k]), min(b, starts[k + 1])
                if lo < hi:
                    sub = piece.da.isel({piece.da.dims[0]: slice(int(lo - starts[k]), int(hi - starts[k]))})
                    blocks.append(_read(piece.path, name, sub))
            block = np.concatenate(blocks)
            if np.isinf(block).any():  # NaN is a missing value (the mask, gaps); inf is a broken one
                when = str(self.times[a + int(np.flatnonzero(np.isinf(block).reshape(len(block), -1).any(1))[0])])
                raise DataError(f"{parts[0].path}: {name!r} has infinite values at {when[:19]}; fix the file")
            out.append(block)
        return np.stack(out, axis=1)


def _read(path: str, name: str, sub: Any) -> np.ndarray:
    """Values of a lazy selection, CF-invalid values as NaN; a damaged file or a lost connection is
    a one-line error."""
    if "://" in path:
        values = guarded(path, f"reading {name!r}", lambda: sub.values, URL_HINT)
        return mask_invalid(np.asarray(values, dtype=np.float32), sub)
    try:
        return mask_invalid(np.asarray(sub.values, dtype=np.float32), sub)
    except Exception as exc:  # netCDF4/HDF5/zarr raise many types for a damaged file
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: cannot read {name!r} ({reason}); is the file complete?") from None
