"""Open anything svqcast did not write: a file, a folder, a glob or a URL, in any supported format.

Two views of the same inputs, both classified by the one suffix table (`svqcast.sources.formats`):

* `open_dataset(path)`: an `xarray.Dataset` (what `predict`, `score` and `plot` read); frame
  data (.npy, video, images) becomes a Dataset with a frame axis;
* `open_source(arg)`: a lazy `Source` for `svqcast prepare` (netCDF split by time or by
  variable, zarr local or remote through fsspec, GRIB through cfgrib, frames through PyAV).
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from svqcast.errors import DataError, MissingExtraError, NetworkError, UsageError
from svqcast.fsutil import check_input
from svqcast.sources.coords import apply_coords
from svqcast.sources.fields import fields_source
from svqcast.sources.formats import FRAME_FORMATS, classify
from svqcast.sources.frames import frames_dataset, open_frames_source
from svqcast.sources.remote_zarr import open_zarr
from svqcast.sources.source import URL_HINT, Source


def open_source(arg: str, *, variables: list[str] | None = None, level: float | None = None,
                coords: Mapping[str, str] | None = None, resize: tuple[int, int] | None = None,
                levels: Sequence[float] | str | None = None) -> Source:
    """Open `arg` lazily as a Source (DataError/UsageError with one line on any problem).

    `coords` ({role: name}, `svqcast.sources.coords`) renames the file's coordinates first;
    `levels` (values or "all") makes one channel per level of variables on levels."""
    fmt, paths = classify(str(arg))
    if level is not None and levels is not None:
        raise UsageError("give `level` (one level, the channel keeps the variable's name) or `levels`, not both")
    if fmt in FRAME_FORMATS:
        if variables or level is not None or levels is not None:
            raise UsageError("`variables` and `level` apply to netCDF, zarr and GRIB inputs, not frame data")
        if coords:
            raise UsageError("`coords` applies to netCDF, zarr and GRIB inputs, not frame data")
        return open_frames_source(fmt, paths, str(arg), resize)
    if resize is not None:
        raise UsageError("`resize` applies to frame data (.npy, video, images); regrid fields before preparing")
    datasets = [apply_coords(_open_xr(fmt, p), coords or {}, p) for p in paths]
    return fields_source(str(arg), paths, datasets, variables, level, levels)


def open_grib(path: Path) -> Any:
    """A GRIB file through cfgrib (the optional `grib` extra), never writing an index file.

    cfgrib's default is to cache its index as `FILE.<hash>.idx` next to the input: a
    read-only command must not leave files in the user's data directory, so the index is
    kept in memory (`indexpath=''`).
    """

    import xarray as xr

    if importlib.util.find_spec("cfgrib") is None:
        raise MissingExtraError("GRIB input", "grib", "cfgrib")
    _refuse_duplicate_messages(path)
    return xr.open_dataset(path, engine="cfgrib", backend_kwargs={"indexpath": ""}, decode_timedelta=True)


_GRIB_IDENTITY = ("shortName", "typeOfLevel", "level", "dataDate", "dataTime", "step", "number")


def _refuse_duplicate_messages(path: Path) -> None:
    """Two messages for the same variable, level, time, step and member: cfgrib keeps the first
    without a word, so the file is refused (exit 3) as a netCDF with duplicated times is."""
    import eccodes

    seen: set[tuple[object, ...]] = set()
    with open(path, "rb") as fh:
        while (msg := eccodes.codes_grib_new_from_file(fh)) is not None:
            try:
                key = tuple(eccodes.codes_get(msg, k) if eccodes.codes_is_defined(msg, k) else None
                            for k in _GRIB_IDENTITY)
            finally:
                eccodes.codes_release(msg)
            if key in seen:
                when = f"{key[3]} {int(key[4]):04d} step {key[5]}"
                raise DataError(f"{path}: two GRIB messages hold {key[0]} at {key[1]} {key[2]} for {when}; "
                                "keep one of them (e.g. grib_copy with a where clause)")
            seen.add(key)


def _open_xr(fmt: str, path: str, *, lazy: bool = True) -> Any:
    """One netCDF, zarr or GRIB input as a Dataset; every reader error becomes one DataError line."""
    import xarray as xr

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # decoding chatter (zarr v3 metadata, time encodings)
            if fmt == "zarr":
                return open_zarr(path, hint=URL_HINT)
            if fmt == "grib":
                return open_grib(Path(path))
            return xr.open_dataset(path, chunks=None, cache=False) if lazy else xr.open_dataset(path)
    except (DataError, MissingExtraError, NetworkError):
        raise
    except Exception as exc:  # netCDF4/h5py/zarr/fsspec/eccodes raise many types for a broken input
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: cannot read as {fmt} ({reason}); is the file complete?") from None


def open_dataset(path: str | os.PathLike[str], coords: Mapping[str, str] | None = None, *,
                 strict: bool = True) -> Any:
    """Any supported input (file, folder, glob or URL) as one xarray.Dataset, its coordinates renamed
    by `coords` ({role: name}; `strict`: every name must be in the file)."""
    return apply_coords(_open_any(path), coords or {}, str(path), strict=strict)


def _open_any(path: str | os.PathLike[str]) -> Any:
    import xarray as xr

    text = str(path)
    if "://" not in text and not Path(text).expanduser().exists() and not any(c in text for c in "*?["):
        raise DataError(f"{path}: no such file or directory")
    check_input(Path(text))  # a FIFO or device would block the reader forever
    fmt, paths = classify(text)
    if fmt in FRAME_FORMATS:  # .npy, video, a folder of images: the readers `svqcast prepare` uses
        return frames_dataset(text)
    parts = [_open_xr(fmt, p, lazy=False) for p in paths]
    if len(parts) == 1:
        return parts[0]
    try:
        return xr.combine_by_coords(parts, combine_attrs="override", data_vars="all")
    except Exception as exc:
        raise DataError(
            f"{path}: cannot combine its {len(parts)} files into one dataset ({str(exc)[:160]}); "
            "they should differ only along time"
        ) from None
