"""`svqcast prepare PATH --name NAME`: the user's own file -> a standard store + user catalog entry.

The same store, statistics and manifest as catalog datasets (svqcast/data/prepare.py), so
everything downstream treats NAME like a catalog name. Order of work, so that a failure
leaves nothing behind: everything that can be checked without writing (format, variables,
time axis, step, splits, window lengths) is checked first; the store is then built in a
temporary directory and moved into place atomically; the catalog entry is written last.
Frames are streamed in blocks of about 64 MB, so memory does not grow with the input.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from svqcast.data.build import plan_store, write_prepared
from svqcast.data.catalog import CATALOG
from svqcast.data.dask_run import Scheduler
from svqcast.data.masks import mask_from_file, parse_mask_arg
from svqcast.data.parts import build_part, finalise, parts_dir
from svqcast.data.splitting import Window, default_windows, split_ranges
from svqcast.data.storedir import Prepared, SplitData, dataset_dir, prepared_dir, root_dir
from svqcast.data.usercatalog import check_name, load_records, locked, register
from svqcast.data.userrecord import build_record
from svqcast.errors import UsageError
from svqcast.fsutil import atomic_dir, check_input, check_output, deferred_signals, finishing, sha256_file
from svqcast.progress import Progress
from svqcast.sources.calendars import TimeStep, infer_step, parse_step
from svqcast.sources.formats import is_url
from svqcast.sources.opener import open_source
from svqcast.sources.source import Source

BLOCK_BYTES = 64 << 20  # frames per write/stats block: about this many bytes
SHA_LIMIT = 1 << 30  # inputs up to 1 GB get a sha256 in the manifest; larger ones their size


def prepare_path(source: str, name: str, *, root: str | os.PathLike[str] | None = None,
                 variables: list[str] | None = None, level: float | None = None, t_in: int | None = None,
                 t_out: int | None = None, time_step: str | None = None, splits: list[str] | None = None,
                 force: bool = False, log: Callable[[str], None] | None = None,
                 progress: Progress | None = None, coords: Mapping[str, str] | None = None,
                 resize: tuple[int, int] | None = None, allow_cuts: bool = False,
                 levels: Sequence[float] | str | None = None, mask: str | None = None, mask_keep: str = "nonzero",
                 allow_missing: bool = False, scheduler: Scheduler | None = None,
                 parts: tuple[int, int] | None = None) -> Path:
    """Prepare `source` as user dataset `name` under `root`; return the store directory.

    `progress` counts the frames written over all splits, chunk by chunk; `coords` ({role: name})
    names coordinates the guesser gets wrong (`svqcast.sources.coords`). `levels` (values or
    "all"): one channel per level of variables on levels. `mask` (``FILE[:VAR]``): cells to keep
    (`mask_keep` "nonzero" or "zero"), added to the cells that never hold data; `allow_missing`
    fills other gaps instead of refusing them (svqcast.data.missing). `scheduler` runs the
    blocks (svqcast.data.dask_run); `parts` = (I, N) writes part I only and returns its directory:
    `svqcast.data.parts.finalise` then merges the parts and registers the dataset."""
    say = log or (lambda _m: None)
    check_name(name)
    if scheduler is not None:
        scheduler.check().probe()  # an unreachable cluster is refused before any input is read
    if name in CATALOG:
        raise UsageError(f"`name` {name}: that is a catalog dataset; choose another name")
    # a file there or a read-only root is exit 2; so is an input inside the store --force would replace
    check_output(dataset_dir(name, root), overwrite=True, kind="dir", inputs=[source])
    if "://" not in str(source):
        check_input(source)  # a FIFO or device would block the reader forever
    def plan() -> _UserPlan:
        return _plan_user(source, {"variables": variables, "level": level, "coords": coords, "resize": resize,
                                   "levels": levels}, (mask, mask_keep), (time_step, t_in, t_out, splits),
                          allow_cuts, allow_missing, say)

    if parts is not None:  # one part: the whole plan is checked; the record travels in the part
        if name in load_records(root) and not force:
            raise UsageError(f"dataset {name!r} already exists in {root_dir(root)}; use `force` to rebuild it in parts")
        up = plan()
        parts_dir(name, root).parent.mkdir(parents=True, exist_ok=True)
        return build_part(plan_store(name, up.prep), prepared_dir(name, root), parts,
                          extra={"record": up.record(name)}, force=True, scheduler=scheduler, progress=progress,
                          say=say)
    with locked(root, name):  # one preparation of a name at a time; the second sees the first's result
        _refuse_existing(name, root, force)
        up = plan()
        target = prepared_dir(name, root)
        # store and record change together: a signal after the store is swapped in waits for the record
        with _clean_on_failure(root_dir(root), name), deferred_signals():
            with atomic_dir(target, overwrite=force) as tmp:
                write_prepared(tmp, name, up.prep, say=say, progress=progress, scheduler=scheduler)
            with finishing():  # the store is in place: its record follows, whatever signal is pending
                register(up.record(name), root)
    say(f"prepared {name} in {target}")
    return target


def finalise_parts(name: str, root: str | os.PathLike[str] | None = None,
                   log: Callable[[str], None] | None = None) -> Path:
    """Merge the parts of `name` (catalog or user dataset) into its store; a user dataset's
    catalog record, carried by its parts, is registered right after the store is swapped in."""
    say = log or (lambda _m: None)
    with locked(root, name), deferred_signals():
        target, _manifest, extra = finalise(name, root, say=say)
        if extra.get("record"):
            with finishing():
                register(extra["record"], root)
    return target


def _plan(src: Source, ranges: dict[str, tuple[int, int]], files: dict[str, dict[str, Any]], allow_cuts: bool,
          allow_missing: bool, keep: np.ndarray | None, mask: str | None, mask_keep: str) -> Prepared:
    prep = user_file(src, ranges, files, allow_cuts)
    prep.allow_missing, prep.levels = allow_missing, src.levels
    if keep is not None:
        prep.splits = {k: _masked(v, keep) for k, v in prep.splits.items()}
        prep.manifest["mask"] = {"file": str(mask), "keep": mask_keep, "cells_kept": int(keep.sum())}
    return prep


@dataclass
class _UserPlan:
    """A user file checked and laid out: what the whole build and every part start from."""

    src: Source
    step: TimeStep | None
    window: Window
    ranges: dict[str, tuple[int, int]]
    files: dict[str, dict[str, Any]]
    prep: Prepared

    def record(self, name: str) -> dict[str, Any]:
        return build_record(name, self.src, self.step, self.window, self.ranges, self.files)


def _plan_user(source: str, open_args: dict[str, Any], mask: tuple[str | None, str],
               axis: tuple[str | None, int | None, int | None, list[str] | None], allow_cuts: bool,
               allow_missing: bool, say: Callable[[str], None]) -> _UserPlan:
    """Open and check `source` (format, variables, mask, time step, windows, splits), fingerprint
    it and lay it out as a `Prepared`; nothing is written."""
    time_step, t_in, t_out, splits = axis
    src = open_source(source, **open_args)
    keep = _user_mask(src, *mask)
    step = _step(src, time_step)
    window = default_windows(src.kind, t_in, t_out)
    ranges = split_ranges(src.times, splits, window, step)
    for note in src.notes:
        say(f"note: {note}")
    files = source_fingerprints(src)
    prep = _plan(src, ranges, files, allow_cuts, allow_missing, keep, *mask)
    return _UserPlan(src, step, window, ranges, files, prep)


def _user_mask(src: Source, mask: str | None, keep: str) -> np.ndarray | None:
    """(H, W) cells to keep from `--mask FILE[:VAR]`, checked against the source's grid first."""
    parsed = parse_mask_arg(mask)
    if parsed is None:
        return None
    if keep not in ("nonzero", "zero"):
        raise UsageError(f"`mask_keep` {keep!r}: use nonzero or zero")
    if src.kind != "weather":
        raise UsageError("`mask` applies to gridded fields (netCDF, zarr, GRIB), not frame data")
    check_input(parsed[0])
    return mask_from_file(parsed[0], parsed[1], src.dims, src.coords, keep)


class _MaskedFrames:
    """frames[a:b] with the cells outside the user's mask set missing (NaN) in every channel."""

    def __init__(self, frames: Any, keep: np.ndarray) -> None:
        self.frames, self.keep = frames, keep

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, sl: slice) -> np.ndarray:
        block = np.array(self.frames[sl], dtype=np.float32)
        block[..., ~self.keep] = np.nan
        return block


def _masked(data: SplitData, keep: np.ndarray) -> SplitData:
    return dataclasses.replace(data, frames=_MaskedFrames(data.frames, keep))


def _split(src: Source, a: int, b: int, base: str, allow_cuts: bool) -> SplitData:
    """Frames a..b of the source; with scene cuts inside, one segment per scene."""
    cuts = src.cuts[(src.cuts > a) & (src.cuts < b)] if not allow_cuts else src.cuts[:0]
    if cuts.size == 0:
        return SplitData(frames=_Range(src.frames, a, b), times=src.times[a:b], attrs={"source": base})
    segments = np.searchsorted(cuts, np.arange(a, b), side="right").astype(np.int32)
    return SplitData(frames=_Range(src.frames, a, b), times=src.times[a:b], segments=segments,
                     strides=np.ones(cuts.size + 1, dtype=np.int32), attrs={"source": base})


def _refuse_existing(name: str, root: str | os.PathLike[str] | None, force: bool) -> None:
    exists = name in load_records(root) or dataset_dir(name, root).exists()
    if exists and not force:
        raise UsageError(f"dataset {name!r} already exists in {root_dir(root)}; use `force` to replace it")


def _step(src: Source, given: str | None) -> TimeStep | None:
    if not src.is_datetime:
        if given is not None:
            raise UsageError("`time_step` applies to data with a calendar time axis, not to frame data")
        return None
    return infer_step(src.times, f"{src.path}: time", parse_step(given) if given else None)


@contextlib.contextmanager
def _clean_on_failure(base: Path, name: str) -> Iterator[None]:
    """Remove the folders this call created if it fails (the data root stays as it was)."""
    created = [p for p in (base, base / name) if not p.exists()]
    try:
        yield
    except BaseException:
        for p in reversed(created):
            with contextlib.suppress(OSError):
                if p.is_dir() and not any(p.iterdir()):
                    p.rmdir()
                elif p == base / name:
                    shutil.rmtree(p, ignore_errors=True)
        raise


def _block(src: Source) -> int:
    c, h, w = len(src.channels), len(src.coords[src.dims[0]]), len(src.coords[src.dims[1]])
    return max(1, BLOCK_BYTES // max(1, 4 * c * h * w))


class _Range:
    """frames[a:b] of a source, re-based at 0 (what the store writer slices)."""

    def __init__(self, frames: Any, a: int, b: int) -> None:
        self.frames, self.a, self.b = frames, a, b

    def __len__(self) -> int:
        return self.b - self.a

    def __getitem__(self, sl: slice) -> np.ndarray:
        lo, hi, _ = sl.indices(len(self))
        return self.frames[slice(self.a + lo, self.a + hi)]


def user_file(src: Source, ranges: dict[str, tuple[int, int]], files: dict[str, dict[str, Any]],
              allow_cuts: bool = False) -> Prepared:
    """The builder of a user's file: the same `Prepared` a catalog builder returns, read lazily
    from the source by time range, so `write_prepared` streams it block by block. Scene cuts
    split the frames into segments, so that no window straddles one (unless `allow_cuts`)."""
    base = os.path.basename(str(src.path))
    splits = {split: _split(src, a, b, base, allow_cuts) for split, (a, b) in ranges.items()}
    return Prepared(
        src.dims, src.coords, src.coord_units, src.dtype, splits,
        sources={k: v.get("sha256") or f"bytes:{v.get('bytes')}" for k, v in files.items()},
        channels=src.channels, units=src.units, time_kind="datetime" if src.is_datetime else "frame",
        normalisation="zscore" if src.kind != "video" else "none", chunk=_block(src),
        align=getattr(src.frames, "time_chunk", None),
        manifest={"select": {"ranges": {k: list(v) for k, v in ranges.items()}}, "user": True},
    )


def source_fingerprints(src: Source) -> dict[str, dict[str, Any]]:
    """Input file -> {bytes, sha256 (files up to 1 GB)}; remote stores -> {url}."""
    out: dict[str, dict[str, Any]] = {}
    for f in src.files:
        p = Path(f)
        if is_url(f) or not p.exists():
            out[f] = {"remote": True}
        elif p.is_dir():
            out[f] = {"bytes": sum(q.stat().st_size for q in p.rglob("*") if q.is_file())}
        else:
            size = p.stat().st_size
            out[str(p.resolve())] = {"bytes": size, "sha256": sha256_file(p) if size <= SHA_LIMIT else None}
    return out


