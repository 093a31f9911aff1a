"""Read a user's own file into one lazy view: (time, channel, y, x) frames plus their axes.

One reader chain for `svqcast prepare PATH`: netCDF (a file, a directory or a glob, split by
time or by variable), zarr (a local store or an https:// / gs:// URL, read lazily through
fsspec), GRIB (the `grib` extra) through xarray with full CF decoding; frame data (`.npy`,
video through PyAV, a folder of images) through `svqcast.data.userframes`. Nothing is
loaded until `frames[a:b]` asks for a block, so preparing a file larger than memory streams.
"""

from __future__ import annotations

import glob
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from svqcast.errors import DataError, MissingExtraError, NetworkError, UsageError
from svqcast.fsutil import check_input
from svqcast.io import is_zarr_dir

NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf", ".cdf", ".h5")
GRIB_SUFFIXES = (".grib", ".grb", ".grib2", ".grb2")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif")
LAT_NAMES = ("lat", "latitude", "nav_lat", "rlat", "y")
LON_NAMES = ("lon", "longitude", "nav_lon", "rlon", "x")
TIME_NAMES = ("time", "valid_time", "t", "date", "datetime")
URL_HINT = "check the network and the URL (a zarr store's top folder), or download the store and prepare the copy"
LEVEL_NAMES = ("level", "plev", "lev", "pressure", "pressure_level", "isobaricinhpa", "height", "depth")


@dataclass
class Source:
    """A user input ready to be written as a store: `frames[a:b]` -> (n, C, H, W)."""

    path: str
    kind: str  # "weather" (fields) | "video" (frames in [0, 1])
    frames: Any
    times: np.ndarray  # datetime64[ns] or int64 frame indices
    channels: list[str]
    units: list[str]
    long_names: list[str]
    dims: tuple[str, str]
    coords: dict[str, np.ndarray]
    coord_units: dict[str, str]
    dtype: str = "float32"  # or "uint8" (frames stored as counts, scale 1/255)
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fps: float | None = None

    @property
    def is_datetime(self) -> bool:
        return np.issubdtype(self.times.dtype, np.datetime64)


def is_url(text: str) -> bool:
    return "://" in str(text)


def looks_like_path(text: str) -> bool:
    """True when `svqcast prepare ARG` names a file, a folder, a glob or a URL (not a catalog name)."""
    s = str(text)
    return is_url(s) or os.path.exists(s) or any(c in s for c in "*?[") or os.sep in s or Path(s).suffix != ""


def classify(arg: str) -> tuple[str, list[str]]:
    """(format, paths): netcdf | zarr | grib | npy | video | images, or a UsageError."""
    if is_url(arg):
        if arg.split("://", 1)[0] not in ("http", "https", "gs"):
            raise UsageError(f"{arg}: unsupported URL scheme; give an https:// or gs:// zarr store")
        return "zarr", [arg]
    if any(c in arg for c in "*?["):
        paths = sorted(glob.glob(os.path.expanduser(arg)))
        if not paths:
            raise DataError(f"{arg}: the pattern matches no file")
        return _classify_many(arg, [Path(p) for p in paths])
    p = Path(arg).expanduser()
    if not p.exists():
        raise UsageError(f"{arg}: no such file or directory")
    check_input(p)  # a FIFO, device or socket would block the reader: exit 2
    if is_zarr_dir(p):
        return "zarr", [str(p)]
    if p.is_dir():
        members = sorted(q for q in p.iterdir() if q.is_file() and not q.name.startswith("."))
        return _classify_many(arg, members)
    return _classify_file(p), [str(p)]


def _classify_file(p: Path) -> str:
    s = p.suffix.lower()
    for fmt, suffixes in (("netcdf", NETCDF_SUFFIXES), ("grib", GRIB_SUFFIXES), ("video", VIDEO_SUFFIXES),
                          ("images", IMAGE_SUFFIXES)):
        if s in suffixes:
            return fmt
    if s == ".npy":
        return "npy"
    raise UsageError(f"{p}: unsupported format {s or '(no suffix)'!r}; prepare reads netCDF, zarr, GRIB, "
                     ".npy, video (mp4/avi) or a folder of images")


def _classify_many(arg: str, paths: list[Path]) -> tuple[str, list[str]]:
    for q in paths:
        check_input(q)
    kinds = {_classify_file(q) for q in paths if q.suffix.lower() not in (".idx", ".txt", ".md", ".json")}
    if not kinds:
        raise DataError(f"{arg}: holds no netCDF, GRIB or image files")
    if len(kinds) > 1:
        raise UsageError(f"{arg}: mixes {', '.join(sorted(kinds))} files; give one kind at a time")
    kind = kinds.pop()
    if kind in ("video", "npy"):
        raise UsageError(f"{arg}: give one {kind} file at a time, not a folder of them")
    keep = [str(q) for q in paths if _classify_file_or_none(q) == kind]
    return kind, keep


def _classify_file_or_none(p: Path) -> str | None:
    try:
        return _classify_file(p)
    except UsageError:
        return None


def open_source(arg: str, *, variables: list[str] | None = None, level: float | None = None) -> Source:
    """Open `arg` lazily as a Source (DataError/UsageError with one line on any problem)."""
    fmt, paths = classify(str(arg))
    if fmt in ("npy", "video", "images"):
        from svqcast.data.userframes import open_frames_source

        if variables or level is not None:
            raise UsageError("`variables` and `level` apply to netCDF, zarr and GRIB inputs, not frame data")
        return open_frames_source(fmt, paths, str(arg))
    datasets = [_open_xr(fmt, p) for p in paths]
    from svqcast.data.userfields import fields_source

    return fields_source(str(arg), paths, datasets, variables, level)


def _open_xr(fmt: str, path: str) -> Any:
    import xarray as xr

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if fmt == "zarr":
                from svqcast.data.zarrstore import open_zarr

                return open_zarr(path, hint=URL_HINT)
            if fmt == "grib":  # the one GRIB reader (cfgrib, never an index file next to the input)
                from svqcast.io import _open_grib

                return _open_grib(Path(path))
            return xr.open_dataset(path, chunks=None, cache=False)
    except (DataError, MissingExtraError, NetworkError):
        raise
    except Exception as exc:  # netCDF4/h5py/zarr/fsspec raise many types for a broken input
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: cannot read as {fmt} ({reason}); is the file complete?") from None

