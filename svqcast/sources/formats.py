"""The one table of input formats: which suffixes (and folder markers) mean which reader.

`svqcast prepare`, `predict`, `score` and `plot` all classify their inputs here, so a file that
one command accepts is accepted by every other (a second table once let `predict x.hdf5`
through while `prepare x.hdf5` refused it).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from svqcast.errors import DataError, UsageError
from svqcast.fsutil import check_input

# format -> file suffixes (lower case). zarr is a folder (ZARR_MARKERS) or a URL, never a suffix match.
SUFFIXES: dict[str, tuple[str, ...]] = {
    "netcdf": (".nc", ".nc4", ".netcdf", ".cdf", ".h5", ".hdf5"),
    "grib": (".grib", ".grib2", ".grb", ".grb2"),
    "npy": (".npy",),
    "video": (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"),
    "images": (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif"),
}
FIELD_FORMATS = ("netcdf", "zarr", "grib")  # read through xarray with CF decoding
FRAME_FORMATS = ("npy", "video", "images")  # read as frames without a calendar
ZARR_MARKERS = (".zgroup", ".zattrs", "zarr.json", ".zmetadata")
URL_SCHEMES = ("http", "https", "gs")
_SIDECARS = (".idx", ".txt", ".md", ".json")  # files a data folder may hold besides the data


def accepted_suffixes() -> tuple[str, ...]:
    """Every suffix any reading command accepts, in table order."""
    return tuple(s for suffixes in SUFFIXES.values() for s in suffixes)


def describe_formats() -> str:
    """The accepted inputs in words, for help texts and refusals."""
    return ("netCDF/HDF5 (" + "/".join(SUFFIXES["netcdf"]) + "), zarr (a folder or an https:// or gs:// URL), "
            "GRIB (" + "/".join(SUFFIXES["grib"]) + "), .npy, video (" + "/".join(SUFFIXES["video"]) + ") "
            "or a folder of images")


def is_zarr_dir(path: Path) -> bool:
    """A zarr store on disk (v2 or v3 metadata)."""
    return path.is_dir() and any((path / m).exists() for m in ZARR_MARKERS)


def format_of(path: Path) -> str | None:
    """The format a single file or folder is read as, or None for an unknown suffix."""
    if is_zarr_dir(path):
        return "zarr"
    suffix = path.suffix.lower()
    return next((fmt for fmt, suffixes in SUFFIXES.items() if suffix in suffixes), None)



def is_url(text: str) -> bool:
    return "://" in str(text)

def looks_like_path(text: str) -> bool:
    """True when `svqcast prepare ARG` names a file, a folder, a glob or a URL (not a catalog name)."""
    s = str(text)
    return is_url(s) or os.path.exists(s) or any(c in s for c in "*?[") or os.sep in s or Path(s).suffix != ""


def classify(arg: str) -> tuple[str, list[str]]:
    """(format, paths) of a file, folder, glob or URL, or a one-line UsageError / DataError.

    A path that exists is taken literally, even when its name holds glob characters.
    """
    if is_url(arg):
        if arg.split("://", 1)[0] not in URL_SCHEMES:
            raise UsageError(f"{arg}: unsupported URL scheme; give an https:// or gs:// zarr store")
        return "zarr", [arg]
    p = Path(arg).expanduser()
    if not p.exists() and any(c in arg for c in "*?["):
        paths = sorted(glob.glob(os.path.expanduser(arg)))
        if not paths:
            raise DataError(f"{arg}: the pattern matches no file")
        return _classify_many(arg, [Path(q) for q in paths])
    if not p.exists():
        raise UsageError(f"{arg}: no such file or directory")
    check_input(p)  # a FIFO, device or socket would block the reader: exit 2
    if is_zarr_dir(p):
        return "zarr", [str(p)]
    if p.is_dir():
        # a FIFO or device inside the folder is refused by check_input, never skipped silently
        members = sorted(q for q in p.iterdir() if not q.name.startswith(".") and (not q.is_dir() or is_zarr_dir(q)))
        return _classify_many(arg, members)
    return _classify_file(p), [str(p)]


def _classify_file(p: Path) -> str:
    fmt = format_of(p)
    if fmt is None or fmt == "zarr":
        suffix = p.suffix.lower() or "(no suffix)"
        raise UsageError(f"{p}: unsupported format {suffix!r}; svqcast reads {describe_formats()}")
    return fmt


def _classify_many(arg: str, paths: list[Path]) -> tuple[str, list[str]]:
    for q in paths:
        if not is_zarr_dir(q):
            check_input(q)
    data = [q for q in paths if q.suffix.lower() not in _SIDECARS]
    kinds = {_classify_file(q) for q in data if not is_zarr_dir(q)}
    zarrs = [q for q in paths if is_zarr_dir(q)]
    if zarrs and not kinds:
        kinds = {"zarr"}
    if not kinds:
        raise DataError(f"{arg}: holds no netCDF, GRIB or image files")
    if len(kinds) > 1:
        raise UsageError(f"{arg}: mixes {', '.join(sorted(kinds))} files; give one kind at a time")
    kind = kinds.pop()
    if kind in ("video", "npy"):
        raise UsageError(f"{arg}: give one {kind} file at a time, not a folder of them")
    keep = [str(q) for q in (zarrs if kind == "zarr" else data) if (format_of(q) == kind)]
    return kind, keep
