"""`svqcast prepare DATASET`: raw upstream files -> the standard store (svqcast/data/store.py).

    ROOT/<dataset>/raw/                 what `svqcast download` fetched (or --from adopted)
    ROOT/<dataset>/prepared/            train.nc val.nc test.nc stats.json manifest.json
    ROOT/<dataset>/prepared-official/   train.nc test.nc ...: the official split, val = test

`stats.json` holds per-channel mean/std computed from the *training* split only, and
`manifest.json` the sha256 of every file. Everything is deterministic: preparing twice gives
byte-identical files (tested). Embedded samples are prepared from the package on first use.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from svqcast import __version__
from svqcast.data.catalog import DatasetEntry, get_entry
from svqcast.data.store import StoreLayout, channel_stats, write_store
from svqcast.errors import DataError, UsageError
from svqcast.fsutil import atomic_dir, sha256_file

SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"
STATS = "stats.json"


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
    """What a builder returns: the common layout (minus split name) and the splits."""

    dims: tuple[str, str]
    coords: dict[str, np.ndarray]
    coord_units: dict[str, str]
    dtype: str
    splits: dict[str, SplitData]
    sources: dict[str, str]  # input file -> sha256, recorded in the manifest


def root_dir(root: str | os.PathLike[str] | None) -> Path:
    from svqcast.constants import data_dir

    return Path(root).expanduser() if root not in (None, "") else data_dir()


def prepared_dir(name: str, root: str | os.PathLike[str] | None = None, official_validation: bool = False) -> Path:
    return root_dir(root) / name / ("prepared-official" if official_validation else "prepared")


def raw_dir(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    return root_dir(root) / name / "raw"


def is_prepared(directory: Path) -> bool:
    return (directory / MANIFEST).is_file()


def split_names(official_validation: bool) -> tuple[str, ...]:
    return ("train", "test") if official_validation else SPLITS


def prepare(name: str, root: str | os.PathLike[str] | None = None, *, official_validation: bool = False,
            source_dir: str | os.PathLike[str] | None = None, force: bool = False,
            select: dict[str, Any] | None = None, log: Callable[[str], None] | None = None) -> Path:
    """Prepare `name` into its store directory and return that directory.

    `official_validation=True` writes the official split (no held-out validation: the
    validation loader reads the test split, as OpenSTL does) into `prepared-official/`.
    `select` replaces the catalog's split selection (e.g. other years); it is recorded in
    the manifest.
    """
    entry = get_entry(name, root)
    target = prepared_dir(name, root, official_validation)
    if entry.is_user and (force or official_validation or not is_prepared(target)):
        raise UsageError(f"{name} is a dataset prepared from your own files: rebuild it with "
                         f"`svqcast prepare {entry.source} --name {name} --force`")
    if is_prepared(target) and not force:
        return target
    src = Path(source_dir) if source_dir is not None else raw_dir(name, root)
    builder = _builder(entry)
    select = dict(select) if select is not None else (entry.official_select if official_validation else entry.select)
    prep = builder(entry, select, src, official_validation)
    say = log or (lambda _m: None)
    # overwrite only when asked (or the old dir lacks its manifest): a concurrent first-use
    # preparation by another process then ends in FileExistsError, which callers accept.
    with atomic_dir(target, overwrite=force or (target.exists() and not is_prepared(target))) as tmp:
        files: dict[str, Any] = {}
        for split in split_names(official_validation):
            data = prep.splits[split]
            layout = StoreLayout(
                dataset=name, split=split, dims=prep.dims, coords=prep.coords, coord_units=prep.coord_units,
                channels=entry.channel_names, units=entry.units, time_kind=entry.time_kind, dtype=prep.dtype,
                attrs={"official_validation": np.int32(official_validation), **(data.attrs or {})},
            )
            say(f"writing {split}.nc ({len(data.times)} frames)")
            write_store(tmp / f"{split}.nc", layout, data.frames, data.times, data.segments, data.strides,
                        data.centres)
        mean, std, count = channel_stats(tmp / "train.nc")
        stats = {
            "dataset": name,
            "computed_on": "train",
            "channels": entry.channel_names,
            "units": entry.units,
            "mean": mean,
            "std": std,
            "count_per_channel": count,
            "normalisation": entry.normalisation,
        }
        (tmp / STATS).write_text(json.dumps(stats, indent=2) + "\n")
        for fname in sorted(p.name for p in tmp.iterdir()):
            files[fname] = {"sha256": sha256_file(tmp / fname), "bytes": (tmp / fname).stat().st_size}
        manifest = {
            "dataset": name,
            "svqcast_version": __version__,
            "store_version": 1,
            "official_validation": official_validation,
            "splits": list(split_names(official_validation)),
            "frames": {s: int(len(prep.splits[s].times)) for s in split_names(official_validation)},
            "sources": prep.sources,
            "select": select,
            "files": files,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    say(f"prepared {name} in {target}")
    return target


def parse_split_years(name: str, items: list[str], official_validation: bool = False) -> dict[str, Any]:
    """`["train=2016:2017", "test=2019"]` -> a `select` with those years replaced."""
    from svqcast.data.sources import parse_years

    entry = get_entry(name)
    base = entry.official_select if official_validation else entry.select
    if "years" not in base:
        raise UsageError(f"`years` applies to WeatherBench datasets, not {name}")
    years = {k: list(v) for k, v in base["years"].items()}
    for item in items:
        split, _, rng = item.partition("=")
        if split not in years or not rng:
            raise UsageError(f"`years` {item!r}: use SPLIT=A:B with SPLIT one of {', '.join(years)}")
        parsed = parse_years(rng)
        assert parsed is not None
        years[split] = list(parsed)
    return {**base, "years": years}


SMALL_STORE = 256 << 20  # stores up to this size get their sha256 checked on every open


def verify(directory: Path, deep: bool = True) -> dict[str, Any]:
    """Check a prepared store against its manifest; DataError (exit 3) naming the file.

    Sizes are always compared; sha256 digests when `deep` (`--verify`, and always before
    statistics are written into a checkpoint) or when the store is small enough for that to
    be cheap. A missing manifest, file or digest mismatch all say how to rebuild the store.
    """
    manifest = read_json(directory / MANIFEST)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not files:
        raise DataError(f"{directory / MANIFEST}: lists no files; {_rebuild(directory, manifest)}")
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


def _rebuild(directory: Path, manifest: Any) -> str:
    name = manifest.get("dataset", directory.parent.name) if isinstance(manifest, dict) else directory.parent.name
    if isinstance(manifest, dict) and manifest.get("user"):
        return f"re-run `svqcast prepare PATH --name {name} --force`"
    return f"re-run `svqcast prepare {name} --force`"


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: missing; run `svqcast prepare` for this dataset") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg}); run `svqcast prepare --force`") from None


# --------------------------------------------------------------------------------------
# builders: one per source layout
# --------------------------------------------------------------------------------------

def _builder(entry: DatasetEntry) -> Callable[[DatasetEntry, dict[str, Any], Path, bool], Prepared]:
    from svqcast.data import builders

    fname = "weatherbench" if entry.name.startswith("weatherbench") else entry.name.replace("-", "_")
    fname = {"era5_uk_t2m": "era5_sample", "nyc_taxi": "flow_sample", "nyc_bike": "flow_sample",
             "kth_walking": "kth_sample", "knmi_radar": "radar_sample"}.get(fname, fname)
    return getattr(builders, fname)
