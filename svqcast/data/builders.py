"""Builders: turn one source layout into per-split frames for `prepare` (no file writing here).

Each builder returns a `Prepared` (common grid + `SplitData` per split). Selection rules
(years, dates, split sizes, clips, persons) come from the catalog entry's `select` /
`official_select`, so the catalog, the docs and the code state the same splits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from svqcast.data.catalog import DatasetEntry
from svqcast.data.prepare import Prepared, SplitData, split_names
from svqcast.data.samples import sample_path
from svqcast.errors import DataError
from svqcast.fsutil import sha256_file

LATLON_UNITS = {"lat": "degrees_north", "lon": "degrees_east", "y": "1", "x": "1"}


def _pixel_coords(h: int, w: int) -> dict[str, np.ndarray]:
    return {"y": np.arange(h, dtype=np.float64), "x": np.arange(w, dtype=np.float64)}


def _source(path: Path) -> dict[str, str]:
    return {path.name: sha256_file(path)}


# ---- embedded samples -----------------------------------------------------------------

def era5_sample(entry: DatasetEntry, select: dict[str, Any], src: Path, official: bool) -> Prepared:
    from svqcast.data.readers import read_netcdf_variable

    path = sample_path(entry.sample_file or "")
    da = read_netcdf_variable(path, "t2m", expect_shape=entry.shape)
    times = da["time"].values.astype("datetime64[ns]")
    values = np.asarray(da.values, dtype=np.float32)[:, None]  # (T, 1, H, W)
    splits = {}
    for split in split_names(official):
        a, b = (np.datetime64(d, "ns") for d in select["dates"][split])
        keep = (times >= a) & (times < b + np.timedelta64(1, "D"))
        splits[split] = SplitData(frames=values[keep], times=times[keep])
    coords = {"lat": da["lat"].values.astype(np.float64), "lon": da["lon"].values.astype(np.float64)}
    return Prepared(("lat", "lon"), coords, LATLON_UNITS, "float32", splits, _source(path))


def flow_sample(entry: DatasetEntry, select: dict[str, Any], src: Path, official: bool) -> Prepared:
    from svqcast.data.readers import read_flow_npz

    path = sample_path(entry.sample_file or "")
    flow = read_flow_npz(path, expect_hw=entry.shape)  # (T, 2, H, W) float32
    start = np.datetime64(entry.extra["start"], "ns")
    slot = np.timedelta64(int(entry.time_step_seconds or 1800), "s")
    times = start + np.arange(len(flow)) * slot
    bounds = np.cumsum([0, *select["split_sizes"]])
    if bounds[-1] != len(flow):
        raise DataError(f"{path}: {len(flow)} slots, but the split sizes add up to {bounds[-1]}")
    parts = {"train": 0, "val": 1, "test": 2}
    splits = {}
    for split in split_names(official):
        k = parts[split]
        splits[split] = SplitData(frames=flow[bounds[k]:bounds[k + 1]], times=times[bounds[k]:bounds[k + 1]])
    return Prepared(("y", "x"), _pixel_coords(*entry.shape), LATLON_UNITS, "float32", splits, _source(path))


def radar_sample(entry: DatasetEntry, select: dict[str, Any], src: Path, official: bool) -> Prepared:
    path = sample_path(entry.sample_file or "")
    with np.load(path) as z:
        q = z["precip_q"]
        scale = float(z["scale"])
        stamps = [str(s) for s in z["time"]]
    frames = (q.astype(np.float64) * scale).astype(np.float32)[:, None]
    times = np.array([np.datetime64(f"{s[:4]}-{s[4:6]}-{s[6:8]}T{s[8:10]}:{s[10:12]}", "ns") for s in stamps])
    bounds = np.cumsum([0, *select["split_sizes"]])
    parts = {"train": 0, "val": 1, "test": 2}
    splits = {s: SplitData(frames=frames[bounds[parts[s]]:bounds[parts[s] + 1]],
                           times=times[bounds[parts[s]]:bounds[parts[s] + 1]]) for s in split_names(official)}
    coords = {"y": np.arange(entry.shape[0]) * 2.0, "x": np.arange(entry.shape[1]) * 2.0}
    return Prepared(("y", "x"), coords, {"y": "km", "x": "km"}, "float32", splits, _source(path))


def _clips_to_split(clips: list[np.ndarray], stride: int) -> SplitData:
    """Concatenate (T, C, H, W) uint8 clips; segment ids and frame indices per clip."""
    frames = np.concatenate(clips) if clips else np.zeros((0, 1, 1, 1), np.uint8)
    segments = np.concatenate([np.full(len(c), k, np.int32) for k, c in enumerate(clips)]) if clips else np.zeros(0)
    times = np.concatenate([np.arange(len(c), dtype=np.int64) for c in clips]) if clips else np.zeros(0, np.int64)
    return SplitData(frames=frames, times=times, segments=segments, strides=np.full(len(clips), stride, np.int32))


def kth_sample(entry: DatasetEntry, select: dict[str, Any], src: Path, official: bool) -> Prepared:
    path = sample_path(entry.sample_file or "")
    with np.load(path) as z:
        frames = z["frames"]
        names = [str(s) for s in z["clips"]]
    splits = {}
    for split in split_names(official):
        clips = [frames[names.index(c)][:, None] for c in select["clips"][split]]
        splits[split] = _clips_to_split(clips, entry.sample_stride)
    return Prepared(("y", "x"), _pixel_coords(*entry.shape), LATLON_UNITS, "uint8", splits, _source(path))


def moving_mnist(entry: DatasetEntry, select: dict[str, Any], src: Path, official: bool) -> Prepared:
    """Two real MNIST digits bouncing in a 64x64 frame (Srivastava et al. 2015 style).

    Deterministic: one seeded generator per split, so preparing twice gives the same bytes.
    Digits of train/val/test come from disjoint ranges of the 1,000 shipped digits.
    """
    path = sample_path(entry.sample_file or "")
    with np.load(path) as z:
        digits = z["digits"]
    size = entry.shape[0]
    n_frames = int(select["frames"])
    splits = {}
    for k, split in enumerate(split_names(official)):
        a, b = select["digits"][split]
        seed = int(select["seed"]) + (2 if official and split == "val" else {"train": 0, "val": 1, "test": 2}[split])
        rng = np.random.default_rng(seed)
        n_seq = int(select["sequences"][split])
        out = np.zeros((n_seq, n_frames, 1, size, size), np.uint8)
        for s in range(n_seq):
            for _ in range(2):
                img = digits[rng.integers(a, b)]
                lim = size - img.shape[0]
                y, x = rng.uniform(0, lim, size=2)
                theta = rng.uniform(0, 2 * np.pi)
                speed = rng.uniform(2.0, 4.0)
                vy, vx = speed * np.sin(theta), speed * np.cos(theta)
                for t in range(n_frames):
                    iy, ix = int(round(y)), int(round(x))
                    window = out[s, t, 0, iy:iy + img.shape[0], ix:ix + img.shape[1]]
                    np.maximum(window, img, out=window)
                    y, x = y + vy, x + vx
                    if not 0 <= y <= lim:
                        vy = -vy
                        y = float(np.clip(y, 0, lim))
                    if not 0 <= x <= lim:
                        vx = -vx
                        x = float(np.clip(x, 0, lim))
        splits[split] = _clips_to_split(list(out), entry.sample_stride)
    return Prepared(("y", "x"), _pixel_coords(size, size), LATLON_UNITS, "uint8", splits, _source(path))


# ---- paper datasets -------------------------------------------------------------------

def weatherbench(entry: DatasetEntry, select: dict[str, Any], src: Path, official: bool) -> Prepared:
    """WeatherBench per-year netCDF (`raw/<folder>/<folder>_<year>_5.625deg.nc`) or a local
    WeatherBench 2 zarr (`raw/wb2.zarr`). Stored frames are subsampled to the dataset's
    time step (WeatherBench-M: 00/06/12/18 UTC); `raw_steps` (hourly length of the split)
    is kept so the official rule's dropped last hour can be replayed exactly."""
    from svqcast.data.readers import WeatherBenchYears, Wb2Store

    wb2 = src / "wb2.zarr"
    store = Wb2Store(wb2) if wb2.is_dir() and not (src / entry.variables[0].folder).is_dir() else None
    step = entry.subsample_step
    native = 1
    if store is not None:
        native = store.step_hours
        if step % native:
            raise DataError(f"{wb2}: {native}-hourly data cannot give {entry.name}'s {step}-hourly steps; "
                            "download the hourly TUM files (--source tum)")
        step //= native
    splits = {}
    lat = lon = None
    sources: dict[str, str] = {}
    for split in split_names(official):
        y0, y1 = select["years"][split]
        frames = WeatherBenchYears(src, list(entry.variables), (y0, y1), step, entry.shape, zarr_store=store)
        la, lo = frames.first_grid()
        if lat is None:
            lat, lon = la, lo
        elif not (np.allclose(lat, la) and np.allclose(lon, lo)):
            raise DataError(f"{src}: grid mismatch between the {split} years and the training years")
        splits[split] = SplitData(frames=frames, times=frames.times,
                                  attrs={"raw_steps": np.int64(frames.raw_steps * native),
                                         "subsample_step": np.int32(entry.subsample_step),
                                         "years": f"{y0}-{y1}"})
        sources[f"{split}_years"] = f"{y0}-{y1}"
    sources["source"] = "wb2 zarr" if store is not None else "WeatherBench netCDF"
    assert lat is not None and lon is not None
    return Prepared(("lat", "lon"), {"lat": lat, "lon": lon}, LATLON_UNITS, "float32", splits, sources)
