"""A prepared dataset's directory: where it lives, what it holds, and the one writer of its
`stats.json` and `manifest.json`.

    ROOT/<dataset>/raw/                 what `svqcast download` fetched (or --from adopted)
    ROOT/<dataset>/prepared/            store.zarr/ stats.json manifest.json
    ROOT/<dataset>/prepared-official/   the same for the official split (val = test)
    ROOT/<dataset>/parts/               parts of a parted build until `--finalise` (svqcast.data.parts)

`stats.json` holds per-channel mean/std computed from the *training* split only, and
`manifest.json` the size and sha256 of every file (the zarr store's files by their path
inside the directory); catalog builders and user files write
both through `write_stats` and `write_manifest` here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from svqcast._version import __version__
from svqcast.constants import data_dir
from svqcast.errors import DataError
from svqcast.fsutil import sha256_file

SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"
STATS = "stats.json"
STORE_FORMAT = 2  # 1: one netCDF file per split (svqcast < 0.3), refused with the rebuild command
SMALL_STORE = 256 << 20  # stores up to this size get their sha256 checked on every open


@dataclass
class SplitData:
    """One split, ready to be written: frames are sliceable (time, C, H, W)."""

    frames: Any
    times: np.ndarray
    segments: np.ndarray | None = None
    strides: np.ndarray | None = None
    centres: np.ndarray | None = None
    attrs: dict[str, Any] | None = None


@dataclass
class Prepared:
    """What a builder returns: the common layout (minus split name) and the splits.

    Catalog builders leave the channel fields empty (the catalog entry has them); a user file's
    builder fills them from the file.
    """

    dims: tuple[str, str]
    coords: dict[str, np.ndarray]
    coord_units: dict[str, str]
    dtype: str
    splits: dict[str, SplitData]
    sources: dict[str, str]  # input file -> sha256, recorded in the manifest
    channels: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)
    time_kind: str = ""  # "datetime" | "frame"
    normalisation: str = ""  # "zscore" | "none"
    chunk: int | None = None  # frames per write and statistics block (None: the store's defaults)
    align: int | None = None  # the input's own chunk along time: blocks are cut on its boundaries
    manifest: dict[str, Any] = field(default_factory=dict)  # more manifest fields (selection, user: true)
    allow_missing: bool = False  # gaps the static mask does not explain are filled, not refused
    levels: dict[str, Any] | None = None  # channels cut from variables on levels (DataSpec.levels)


def root_dir(root: str | os.PathLike[str] | None) -> Path:
    return Path(root).expanduser() if root not in (None, "") else data_dir()


def dataset_dir(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """ROOT/NAME, refusing any name that would lead outside the data root."""
    if not name or name in (".", "..") or Path(name).name != name or "/" in name or "\\" in name:
        raise DataError(f"dataset name {name!r} would lead outside the data root; "
                        "names are single path components")
    return root_dir(root) / name


def prepared_dir(name: str, root: str | os.PathLike[str] | None = None, official_validation: bool = False) -> Path:
    return dataset_dir(name, root) / ("prepared-official" if official_validation else "prepared")


def raw_dir(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    return dataset_dir(name, root) / "raw"


def is_prepared(directory: Path) -> bool:
    return (directory / MANIFEST).is_file()


def split_names(official_validation: bool) -> tuple[str, ...]:
    return ("train", "test") if official_validation else SPLITS


def write_stats(directory: Path, stats: dict[str, Any]) -> None:
    """`stats.json` (training-split statistics) into a store being built."""
    (directory / STATS).write_text(json.dumps(stats, indent=2) + "\n")


def store_files(directory: Path) -> list[str]:
    """Every file under `directory`, as sorted POSIX paths relative to it."""
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())


def file_digests(directory: Path) -> dict[str, dict[str, Any]]:
    """sha256 and size of every file under `directory` (what a manifest lists)."""
    return {name: {"sha256": sha256_file(directory / name), "bytes": (directory / name).stat().st_size}
            for name in store_files(directory)}


def write_manifest(directory: Path, fields: dict[str, Any]) -> dict[str, Any]:
    """`manifest.json` for a store being built: `fields` plus versions and the files' digests.

    Written last, after every other file, so a store with a manifest is a complete store.
    """
    manifest = {"svqcast_version": __version__, "store_version": STORE_FORMAT, **fields,
                "files": file_digests(directory)}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def verify(directory: Path, deep: bool = True) -> dict[str, Any]:
    """Check a prepared store against its manifest; DataError (exit 3) naming the file.

    Sizes are always compared; sha256 digests when `deep` (`--verify`, and always before
    statistics are written into a checkpoint) or when the store is small enough for that to
    be cheap. A missing manifest, file or digest mismatch all say how to rebuild the store.
    """
    manifest = read_json(directory / MANIFEST)
    files = _manifest_files(directory, manifest)
    refuse_old_format(directory, manifest)
    deep = deep or sum(int(info.get("bytes", 0)) for info in files.values()) <= SMALL_STORE
    for fname, info in sorted(files.items()):
        p = directory / fname
        if not p.is_file():
            raise DataError(f"{p}: missing from the prepared store; {_rebuild(directory, manifest)}")
        if "bytes" in info and p.stat().st_size != int(info["bytes"]):
            raise DataError(f"{p}: size {p.stat().st_size} differs from the manifest's {info['bytes']} (modified or "
                            f"truncated); {_rebuild(directory, manifest)}")
        if deep and sha256_file(p) != info.get("sha256"):
            raise DataError(f"{p}: sha256 does not match the manifest (modified or corrupt); "
                            f"{_rebuild(directory, manifest)}")
    return manifest


def _manifest_files(directory: Path, manifest: Any) -> dict[str, dict[str, Any]]:
    """The manifest's file table, checked as untrusted input: plain file names inside the store
    (never a path that leads out of it), each with an integer size and a sha256 string."""
    where = directory / MANIFEST
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not files:
        raise DataError(f"{where}: lists no files; {_rebuild(directory, manifest)}")
    for fname, info in files.items():
        parts = fname.split("/")
        if not fname or fname.startswith("/") or "\\" in fname or any(p in ("", ".", "..") for p in parts):
            raise DataError(f"{where}: lists {fname[:60]!r}, which is not a file of the store; "
                            f"{_rebuild(directory, manifest)}")
        if not (isinstance(info, dict) and isinstance(info.get("bytes", 0), int)
                and isinstance(info.get("sha256", ""), (str, type(None)))):
            raise DataError(f"{where}: the entry of {fname} has wrong types; {_rebuild(directory, manifest)}")
    return files


def refuse_old_format(directory: Path, manifest: Any) -> None:
    """A store of the previous format (one netCDF file per split) is not read: one line that
    names the command which rebuilds it."""
    version = manifest.get("store_version") if isinstance(manifest, dict) else None
    if version != STORE_FORMAT:
        raise DataError(f"{directory}: prepared in store format {version} (svqcast 0.3 reads format {STORE_FORMAT}, "
                        f"one zarr store per dataset); {_rebuild(directory, manifest)}")


def _rebuild(directory: Path, manifest: Any) -> str:
    name = manifest.get("dataset", directory.parent.name) if isinstance(manifest, dict) else directory.parent.name
    if isinstance(manifest, dict) and manifest.get("user"):
        return f"re-run `svqcast prepare PATH --name {name} --force`"
    return f"re-run `svqcast prepare {name} --force`"


def read_json(path: Path, what: str = "", fix: str = "run `svqcast prepare --force`") -> Any:
    """A JSON file svqcast wrote (or a user may have edited): any damage is one DataError line."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: missing; run `svqcast prepare` for this dataset") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not {what or 'a JSON file'}; move it away and {fix}") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg}); {fix}") from None
    except (UnicodeDecodeError, RecursionError, OSError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else type(exc).__name__
        raise DataError(f"{path}: unreadable {what or 'JSON'} ({reason}); {fix}") from None
