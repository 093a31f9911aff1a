"""The one store writer of every preparation (catalog builder or user file), as a dask graph.

    plan   -> a `StorePlan`: the store's layout (every split a range of one time axis), the
              small arrays, the splits' frame readers and the chunk-aligned blocks
    blocks -> written by `svqcast.data.blocks.write_block` on the chosen `Scheduler`
    finish -> missing-value check, training statistics merged from the blocks, stats.json,
              manifest.json (written last: a store with a manifest is complete)

A whole build runs plan, blocks and finish in one directory; a parted build
(`svqcast.data.parts`) runs the blocks of one part per process and finishes once all exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from svqcast.data.blocks import Block, BlockResult, BlockTask, SplitSource, merge_stats, plan_blocks
from svqcast.data.dask_run import Scheduler, run_blocks
from svqcast.data.missing import check_missing
from svqcast.data.store import STORE, StoreLayout, create_store, read_meta
from svqcast.data.storedir import Prepared, write_manifest, write_stats
from svqcast.errors import DataError
from svqcast.progress import Progress, counted


@dataclass
class FinishInfo:
    """What finishing a store needs besides its blocks' results (JSON: parts carry it)."""

    name: str
    normalisation: str
    allow_missing: bool
    levels: dict[str, Any] | None
    manifest: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "normalisation": self.normalisation, "allow_missing": self.allow_missing,
                "levels": self.levels, "manifest": self.manifest}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> FinishInfo:
        return cls(str(raw["name"]), str(raw["normalisation"]), bool(raw["allow_missing"]), raw.get("levels"),
                   dict(raw.get("manifest") or {}))


@dataclass
class StorePlan:
    """A preparation laid out on the store's time axis, ready to be written in blocks."""

    layout: StoreLayout
    times: np.ndarray
    segments: np.ndarray
    per_split: dict[str, dict[str, np.ndarray]]
    sources: list[SplitSource]
    blocks: list[Block]
    info: FinishInfo

    def create(self, directory: Path) -> Path:
        store = directory / STORE
        create_store(store, self.layout, self.times, self.segments, self.per_split)
        return store

    def task(self, store: Path) -> BlockTask:
        return BlockTask(str(store), self.sources, tuple(self.layout.splits["train"]),  # type: ignore[arg-type]
                         self.layout.dtype, 1 / 255 if self.layout.dtype == "uint8" else 1.0)


def plan_store(name: str, prep: Prepared, official_validation: bool = False) -> StorePlan:
    """The store layout of `prep`: its splits, in order, one after another on one time axis."""
    ranges, start = {}, 0
    times, segments, sources = [], [], []
    per_split: dict[str, dict[str, np.ndarray]] = {}
    for split, data in prep.splits.items():
        n = len(data.times)
        ranges[split] = (start, start + n)
        times.append(np.asarray(data.times))
        segments.append(np.zeros(n, np.int32) if data.segments is None else np.asarray(data.segments, np.int32))
        per_split[split] = {k: v for k, v in (("stride", data.strides), ("centre", data.centres)) if v is not None}
        sources.append(SplitSource(split, start, data.frames))
        start += n
    layout = StoreLayout(
        dataset=name, dims=prep.dims, coords=prep.coords, coord_units=prep.coord_units, channels=prep.channels,
        units=prep.units, time_kind=prep.time_kind, splits=ranges, dtype=prep.dtype,
        attrs={"official_validation": int(official_validation)},
        split_attrs={s: dict(d.attrs or {}) for s, d in prep.splits.items()},
    )
    manifest = {"dataset": name, "official_validation": official_validation, "splits": list(prep.splits),
                "frames": {s: int(len(d.times)) for s, d in prep.splits.items()}, "sources": prep.sources,
                **prep.manifest}
    info = FinishInfo(name, prep.normalisation, prep.allow_missing, prep.levels, manifest)
    all_times = np.concatenate(times) if times else np.zeros(0, "datetime64[ns]")
    return StorePlan(layout, all_times, np.concatenate(segments) if segments else np.zeros(0, np.int32),
                     per_split, sources, plan_blocks(start, layout.chunk, prep.chunk, prep.align), info)


def run_plan(plan: StorePlan, store: Path, blocks: list[Block], sched: Scheduler | None,
             progress: Progress | None, say: Callable[[str], None]) -> list[BlockResult]:
    """Write `blocks` of the plan into `store`, counting frames on `progress`."""
    sched = (sched or Scheduler()).check()
    frames = sum(b.stop - b.start for b in blocks)
    say(f"writing {frames} frames in {len(blocks)} blocks on {sched.describe()}")
    report = counted(progress, "prepare", frames, "preparing (frames written)")
    written = np.cumsum([0] + [b.stop - b.start for b in blocks])

    def tick(done: int) -> None:  # blocks finish in any order: count whole blocks
        report(int(written[done]))

    return run_blocks(plan.task(store), blocks, sched, tick)


def scan_chunk(blocks: list[Block]) -> int:
    """Frames per read of the missing-value scan: one block's worth."""
    return max((b.stop - b.start for b in blocks), default=1)


def check_stats(name: str, channels: list[str], normalisation: str, mean: list[float], std: list[float]) -> None:
    """A channel that is constant (or not finite) over the training split cannot be z-scored:
    refuse it here, naming it, rather than at the first training step."""
    for ch, m, s in zip(channels, mean, std, strict=True):
        if not (np.isfinite(m) and np.isfinite(s)):
            raise DataError(f"{name}: channel '{ch}' has a non-finite mean or std over the training split "
                            f"(mean {m}, std {s}); the input holds inf or NaN values")
        if normalisation == "zscore" and s == 0:
            raise DataError(f"{name}: channel '{ch}' is constant ({m:g}) over the training split and cannot be "
                            "normalised; drop the channel (`variables`) or choose other splits (`splits`)")


def finish(directory: Path, info: FinishInfo, results: list[BlockResult], chunk: int,
           say: Callable[[str], None]) -> dict[str, Any]:
    """stats.json and manifest.json of the store in `directory`, from its blocks' results."""
    store = directory / STORE
    meta = read_meta(store, "train")
    channels, units = meta.channels, meta.units
    nan_splits = {s for r in results for s in r.nan_splits}
    missing = check_missing(store, info.name, nan_splits, chunk, info.allow_missing)
    mean, std, count = merge_stats(results)
    check_stats(info.name, channels, info.normalisation, mean, std)
    extra = {k: v for k, v in {**missing, "levels": info.levels}.items() if v}
    write_stats(directory, {"dataset": info.name, "computed_on": "train", "channels": channels, "units": units,
                            "mean": mean, "std": std, "count_per_channel": count,
                            "normalisation": info.normalisation, **extra})
    for split, n in (missing.get("missing_filled") or {}).items():
        say(f"note: {n} missing values in the {split} split are not explained by the mask; the network sees "
            "them filled with the training mean (--allow-missing) and no score counts them")
    return write_manifest(directory, info.manifest)


def write_prepared(tmp: Path, name: str, prep: Prepared, *, official_validation: bool = False,
                   say: Callable[[str], None] | None = None, progress: Progress | None = None,
                   scheduler: Scheduler | None = None) -> dict[str, Any]:
    """The whole store of `prep` in the directory being built: plan, every block, finish."""
    say = say or (lambda _m: None)
    plan = plan_store(name, prep, official_validation)
    store = plan.create(tmp)
    results = run_plan(plan, store, plan.blocks, scheduler, progress, say)
    return finish(tmp, plan.info, results, scan_chunk(plan.blocks), say)


__all__ = ["FinishInfo", "StorePlan", "check_stats", "finish", "plan_store", "run_plan", "write_prepared"]
