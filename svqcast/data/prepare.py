"""`svqcast prepare DATASET`: raw upstream files -> the standard store (`svqcast.data.storedir`).

One pipeline for every catalog dataset: the entry names its builder (`builder` in
`catalog.toml`, looked up in `svqcast.data.builders.BUILDERS`), the builder returns the splits,
and this module writes them, the training-split statistics and the manifest. Everything is
deterministic: preparing twice gives byte-identical files (tested). Embedded samples are
prepared from the package on first use. A user's own file (`svqcast prepare PATH --name`)
goes through `svqcast.data.userprep`, which streams through the same store writer.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from svqcast.data.builders import builder_for
from svqcast.data.catalog import get_entry
from svqcast.data.downloads import parse_years
from svqcast.data.missing import check_missing
from svqcast.data.store import StoreLayout, channel_stats, write_store
from svqcast.data.storedir import (
    Prepared,
    is_prepared,
    prepared_dir,
    raw_dir,
    split_names,
    verify,
    write_manifest,
    write_stats,
)
from svqcast.errors import DataError, UsageError
from svqcast.fsutil import atomic_dir
from svqcast.progress import Progress, counted


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
        verify(target, deep=False)  # an existing store is checked (sizes; digests when small), never trusted
        return target
    src = Path(source_dir) if source_dir is not None else raw_dir(name, root)
    builder = builder_for(entry)
    select = dict(select) if select is not None else (entry.official_select if official_validation else entry.select)
    prep = builder(entry, select, src, official_validation)
    say = log or (lambda _m: None)
    prep.channels, prep.units = prep.channels or entry.channel_names, prep.units or entry.units
    prep.time_kind, prep.normalisation = prep.time_kind or entry.time_kind, prep.normalisation or entry.normalisation
    prep.manifest = {"select": select, **prep.manifest}
    prep.splits = {s: prep.splits[s] for s in split_names(official_validation)}
    # overwrite only when asked (or the old dir lacks its manifest): a concurrent first-use
    # preparation by another process then ends in FileExistsError, which callers accept.
    with atomic_dir(target, overwrite=force or (target.exists() and not is_prepared(target))) as tmp:
        write_prepared(tmp, name, prep, official_validation=official_validation, say=say)
    say(f"prepared {name} in {target}")
    return target


def parse_split_years(name: str, items: list[str], official_validation: bool = False) -> dict[str, Any]:
    """`["train=2016:2017", "test=2019"]` -> a `select` with those years replaced."""
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


def _check_stats(name: str, prep: Prepared, mean: list[float], std: list[float]) -> None:
    """A channel that is constant (or not finite) over the training split cannot be z-scored:
    refuse it here, naming it, rather than at the first training step."""
    for ch, m, s in zip(prep.channels, mean, std, strict=True):
        if not (np.isfinite(m) and np.isfinite(s)):
            raise DataError(f"{name}: channel '{ch}' has a non-finite mean or std over the training split "
                            f"(mean {m}, std {s}); the input holds inf or NaN values")
        if prep.normalisation == "zscore" and s == 0:
            raise DataError(f"{name}: channel '{ch}' is constant ({m:g}) over the training split and cannot be "
                            "normalised; drop the channel (`variables`) or choose other splits (`splits`)")


class _Counted:
    """A sliceable frame source that reports the frames read (what `write_store` writes) to `tick`
    and notes whether any value was missing (NaN), so complete data is never scanned twice."""

    def __init__(self, frames: Any, tick: Callable[[int], None]) -> None:
        self.frames, self.tick = frames, tick
        self.nan_seen = False

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, sl: slice) -> Any:
        block = self.frames[sl]
        if not self.nan_seen and np.issubdtype(np.asarray(block).dtype, np.floating):
            self.nan_seen = bool(np.isnan(block).any())
        self.tick(len(block))
        return block


def write_prepared(tmp: Path, name: str, prep: Prepared, *, official_validation: bool = False,
                   say: Callable[[str], None] | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """The one store writer of every preparation, catalog builder or user file: each split, the
    training-split statistics and the manifest, into the directory being built."""
    say = say or (lambda _m: None)
    total, done = sum(len(s.times) for s in prep.splits.values()), [0]
    report = counted(progress, "prepare", total, "preparing (frames written)")

    def tick(frames: int) -> None:
        done[0] += frames
        report(done[0])

    chunk = {} if prep.chunk is None else {"chunk": prep.chunk}
    nan_splits: set[str] = set()
    for split, data in prep.splits.items():
        layout = StoreLayout(
            dataset=name, split=split, dims=prep.dims, coords=prep.coords, coord_units=prep.coord_units,
            channels=prep.channels, units=prep.units, time_kind=prep.time_kind, dtype=prep.dtype,
            attrs={"official_validation": np.int32(official_validation), **(data.attrs or {})},
        )
        say(f"writing {split}.nc ({len(data.times)} frames)")
        frames = _Counted(data.frames, tick)
        write_store(tmp / f"{split}.nc", layout, frames, data.times, data.segments,
                    data.strides, data.centres, **chunk)
        if frames.nan_seen:
            nan_splits.add(split)
    missing = check_missing(tmp, name, prep, nan_splits, prep.chunk or 1024, prep.allow_missing)
    mean, std, count = channel_stats(tmp / "train.nc", **chunk)
    _check_stats(name, prep, mean, std)
    extra = {k: v for k, v in {**missing, "levels": prep.levels}.items() if v}
    write_stats(tmp, {"dataset": name, "computed_on": "train", "channels": prep.channels, "units": prep.units,
                      "mean": mean, "std": std, "count_per_channel": count, "normalisation": prep.normalisation,
                      **extra})
    for split, n in (missing.get("missing_filled") or {}).items():
        say(f"note: {n} missing values in the {split} split are not explained by the mask; the network sees "
            "them filled with the training mean (--allow-missing) and no score counts them")
    return write_manifest(tmp, {
        "dataset": name, "official_validation": official_validation, "splits": list(prep.splits),
        "frames": {s: int(len(d.times)) for s, d in prep.splits.items()}, "sources": prep.sources, **prep.manifest,
    })
