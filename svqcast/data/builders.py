"""Builders: turn one source layout into per-split frames for `prepare` (no file writing here).

Each builder returns a `Prepared` (common grid + `SplitData` per split). Selection rules
(years, dates, split sizes, clips, persons) come from the catalog entry's `select` /
`official_select`, so the catalog, the docs and the code state the same splits.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from svqcast.data.entry import DatasetEntry
from svqcast.data.readers import (
    Wb2Store,
    WeatherBenchYears,
    human_frame_path,
    read_flow_npz,
    read_human_meta,
    read_kitti_split,
    read_kitticaltech_npy,
    read_netcdf_variable,
    read_taxibj_npz,
)
from svqcast.data.samples import sample_path
from svqcast.data.storedir import Prepared, SplitData, split_names
from svqcast.errors import DataError, UsageError
from svqcast.fsutil import sha256_file
from svqcast.sources.video import read_avi, read_avi_info, read_jpg

LATLON_UNITS = {"lat": "degrees_north", "lon": "degrees_east", "y": "1", "x": "1"}


def _pixel_coords(h: int, w: int) -> dict[str, np.ndarray]:
    return {"y": np.arange(h, dtype=np.float64), "x": np.arange(w, dtype=np.float64)}


def _source(path: Path) -> dict[str, str]:
    return {path.name: sha256_file(path)}


# ---- embedded samples -----------------------------------------------------------------

def era5_sample(entry: DatasetEntry, select: dict[str, Any], src: Path, official: bool) -> Prepared:
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
    for split in split_names(official):
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

    wb2 = src / "wb2.zarr"
    store = Wb2Store(wb2) if wb2.is_dir() and not (src / entry.variables[0].folder).is_dir() else None
    step = entry.subsample_step
    native = 1
    if store is not None:
        native = store.step_hours
        if step % native:
            raise DataError(f"{wb2}: {native}-hourly data cannot give {entry.name}'s {step}-hourly steps; "
                            "download the hourly TUM files (`source` tum)")
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
        elif not (np.allclose(lat, la) and np.allclose(np.asarray(lon), lo)):
            raise DataError(f"{src}: grid mismatch between the {split} years and the training years")
        splits[split] = SplitData(frames=frames, times=frames.times,
                                  attrs={"raw_steps": np.int64(frames.raw_steps * native),
                                         "subsample_step": np.int32(entry.subsample_step),
                                         "years": f"{y0}-{y1}"})
        sources[f"{split}_years"] = f"{y0}-{y1}"
    sources["source"] = "wb2 zarr" if store is not None else "WeatherBench netCDF"
    assert lat is not None and lon is not None
    return Prepared(("lat", "lon"), {"lat": lat, "lon": lon}, LATLON_UNITS, "float32", splits, sources)


class ClipFrames:
    """Frames of many clips, concatenated, loaded one clip at a time on demand.

    `loaders[k]()` returns clip k as uint8 (T_k, C, H, W); lengths are known up front, so
    the store can be written in chunks without holding a whole video dataset in memory."""

    def __init__(self, loaders: list[Any], lengths: list[int], shape: tuple[int, int, int], names: list[str]) -> None:
        self.loaders, self.lengths, self.shape, self.names = loaders, lengths, shape, names
        self.bounds = np.cumsum([0, *lengths])
        self._cache: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return int(self.bounds[-1])

    def _clip(self, k: int) -> np.ndarray:
        if self._cache is None or self._cache[0] != k:
            clip = self.loaders[k]()
            if clip.shape != (self.lengths[k], *self.shape):
                raise DataError(f"{self.names[k]}: decoded {clip.shape}, expected ({self.lengths[k]}, "
                                f"{', '.join(map(str, self.shape))})")
            self._cache = (k, clip)
        return self._cache[1]

    def __getitem__(self, sl: slice) -> np.ndarray:
        idx = np.arange(len(self))[sl]
        out = np.empty((len(idx), *self.shape), np.uint8)
        if len(idx) == 0:
            return out
        clip_of = np.searchsorted(self.bounds, idx, side="right") - 1
        for k in np.unique(clip_of):
            sel = clip_of == k
            out[sel] = self._clip(int(k))[idx[sel] - self.bounds[k]]
        return out

    def segments(self) -> np.ndarray:
        return np.concatenate([np.full(n, k, np.int32) for k, n in enumerate(self.lengths)]) if self.lengths else \
            np.zeros(0, np.int32)


def _find(src: Path, name: str) -> Path:
    hits = sorted(src.rglob(name)) if src.is_dir() else []
    if not hits:
        raise DataError(f"{src}: no {name} found; run `svqcast download` first (or `from_path` PATH)")
    return hits[0]


def taxibj(entry: DatasetEntry, select: dict[str, Any], src: Path, official: bool) -> Prepared:
    """OpenSTL's pre-windowed TaxiBJ: every (X, Y) pair becomes one 8-frame segment.
    Our validation split is the last `val_last` training windows, with the `gap` windows
    before it dropped (consecutive windows share frames)."""

    path = _find(src, "dataset.npz")
    d = read_taxibj_npz(path)
    train = np.concatenate([d["X_train"], d["Y_train"]], axis=1)  # (N, 8, 2, H, W)
    test = np.concatenate([d["X_test"], d["Y_test"]], axis=1)
    n_val, gap = int(select.get("val_last", 0)), int(select.get("gap", 0))
    parts = {"test": test}
    if n_val and not official:
        if n_val + gap >= len(train):
            raise DataError(f"{path}: only {len(train)} training windows; cannot hold out {n_val}")
        parts["train"], parts["val"] = train[: len(train) - n_val - gap], train[len(train) - n_val:]
    else:
        parts["train"] = train
    splits = {}
    for split in split_names(official):
        w = parts[split]
        n, t = w.shape[:2]
        splits[split] = SplitData(frames=w.reshape(n * t, *w.shape[2:]), times=np.tile(np.arange(t), n),
                                  segments=np.repeat(np.arange(n, dtype=np.int32), t))
    return Prepared(("y", "x"), _pixel_coords(*entry.shape), LATLON_UNITS, "float32", splits, _source(path))


_KTH_DIR = re.compile(r"person(\d+)_([a-z]+)_d(\d)_uncomp")


def kth(entry: DatasetEntry, select: dict[str, Any], src: Path, official: bool) -> Prepared:
    """KTH: `raw/<action>/personNN_<action>_dK_uncomp/image_XXXX.jpg` folders (OpenSTL's
    kth_action.zip) or the original `personNN_<action>_dK_uncomp.avi` files. Channel 0,
    resized to 128x128 (bilinear), split by person; runs of consecutive frame numbers are
    separate clips; per-action stride (30, or 3 for jogging/running), scanned backwards."""

    size = entry.shape
    clips: list[tuple[int, str, str, Any, int, list[int]]] = []  # person, action, name, loader, length, numbers
    if not src.is_dir():
        raise DataError(f"{src}: KTH raw folder not found; run `svqcast download kth` (or `from_path` PATH)")
    for p in sorted(src.rglob("*")):
        m = _KTH_DIR.fullmatch(p.stem if p.suffix == ".avi" else p.name)
        if not m:
            continue
        person, action = int(m[1]), m[2]
        if p.is_dir():
            files = sorted(p.glob("image_*.jpg"), key=lambda f: int(f.stem.split("_")[-1]))
            nums = [int(f.stem.split("_")[-1]) for f in files]
            run_start = 0
            for i in range(1, len(files) + 1):  # split into runs of consecutive frame numbers
                if i == len(files) or nums[i] != nums[i - 1] + 1:
                    run = files[run_start:i]
                    clips.append((person, action, f"{p}[{nums[run_start]}..{nums[i - 1]}]",
                                  (lambda run=run: np.stack([read_jpg(f, size=size, gray=True) for f in run])[:, None]),
                                  len(run), nums[run_start:i]))
                    run_start = i
        elif p.suffix == ".avi":
            n = len(read_avi_info(p).chunks)
            clips.append((person, action, str(p), (lambda p=p: _resize_gray(read_avi(p), size)[:, None]), n,
                          list(range(1, n + 1))))
    if not clips:
        raise DataError(f"{src}: no KTH clips (personNN_<action>_dK_uncomp folders or .avi files) found")
    strides = select["stride"]
    splits = {}
    for split in split_names(official):
        persons = set(select["persons"][split])
        chosen = [c for c in clips if c[0] in persons]
        frames = ClipFrames([c[3] for c in chosen], [c[4] for c in chosen], (1, *size), [c[2] for c in chosen])
        splits[split] = SplitData(frames=frames, times=np.concatenate([c[5] for c in chosen]).astype(np.int64)
                                  if chosen else np.zeros(0, np.int64), segments=frames.segments(),
                                  strides=np.array([strides.get(c[1], entry.sample_stride) for c in chosen], np.int32))
    return Prepared(("y", "x"), _pixel_coords(*size), LATLON_UNITS, "uint8", splits, {"clips": str(len(clips))})


def _resize_gray(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if frames.shape[1:] == size:
        return frames
    from PIL import Image

    bilinear = Image.Resampling.BILINEAR
    return np.stack([np.asarray(Image.fromarray(f).resize((size[1], size[0]), bilinear)) for f in frames])


def _forward_starts(sources: np.ndarray, span: int) -> np.ndarray:
    """PredNet/OpenSTL KITTI rule: scan forward; a start is taken when the span stays in one
    source video, then jump a whole span (non-overlapping), else move one frame."""
    starts, cur, n = [], 0, len(sources)
    while cur <= n - span:
        if sources[cur] == sources[cur + span - 1]:
            starts.append(cur)
            cur += span
        else:
            cur += 1
    return np.asarray(starts, np.int64)


def kitticaltech(entry: DatasetEntry, select: dict[str, Any], src: Path, official: bool) -> Prepared:
    """KITTI from PredNet's hkl files (`X_<split>.hkl`, `sources_<split>.hkl`), or OpenSTL's
    `kitticaltech_npy/{train,test}_{data,idx}.npy`. Caltech's .seq videos need OpenCV to
    decode; use the npy layout for the test split. Frames stay uint8 RGB (C = 3)."""

    span = max(entry.idx_out) - min(entry.idx_in) + 1  # 11
    lead = -min(entry.idx_in)
    npy_dir = next((p.parent for p in sorted(src.rglob("train_data.npy"))), None) if src.is_dir() else None
    hkl_dir = next((p.parent for p in sorted(src.rglob("X_train.hkl"))), None) if src.is_dir() else None
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # split -> (frames NHWC, starts)
    files = select["files"]
    for split in split_names(official):
        which = files[split]
        if hkl_dir is not None and (hkl_dir / f"X_{which}.hkl").is_file():
            frames, sources = read_kitti_split(hkl_dir, which)
            parts[split] = (frames, _forward_starts(sources, span))
        elif npy_dir is not None and (npy_dir / f"{which}_data.npy").is_file():
            parts[split] = read_kitticaltech_npy(npy_dir, which)
        else:
            raise DataError(f"{src}: no {which} split found (need kitti X_{which}.hkl or kitticaltech_npy/"
                            f"{which}_data.npy; Caltech .seq files must be converted to the npy layout)")
    splits = {}
    for split, (frames, starts) in parts.items():
        frames = np.moveaxis(frames, -1, 1)  # (N, 3, H, W)
        if frames.shape[2:] != entry.shape:
            raise DataError(f"{src}: {split} frames are {frames.shape[2]}x{frames.shape[3]}, expected "
                            f"{entry.shape[0]}x{entry.shape[1]}")
        splits[split] = SplitData(frames=frames, times=np.arange(len(frames), dtype=np.int64),
                                  centres=starts + lead)
    return Prepared(("y", "x"), _pixel_coords(*entry.shape), LATLON_UNITS, "uint8", splits, {})


def human36m(entry: DatasetEntry, select: dict[str, Any], src: Path, official: bool) -> Prepared:
    """Human3.6M: `raw/images/<prefix>_<frame:06d>.jpg` (256x256 RGB) and the meta files
    `train.txt` / `test.txt` (`prefix,begin,end`). Each video's referenced frame range is
    stored once; every meta line becomes an explicit sample centre (begin + 15)."""

    images = src / "images"
    if not images.is_dir():
        raise DataError(f"{images}: Human3.6M image folder not found; run `svqcast download human36m` "
                        "(or `from_path` PATH with images/ and train.txt/test.txt)")
    meta = {"train": read_human_meta(src / "train.txt"), "test": read_human_meta(src / "test.txt")}
    subjects = select["subjects"]
    lead, tail = -min(entry.idx_in), max(entry.idx_out)
    splits = {}
    for split in split_names(official):
        wanted = set(subjects[split])
        lines = [ln for ln in meta["test" if split == "test" or (official and split == "val") else "train"]
                 if ln[0].split("_")[0] in wanted]
        by_video: dict[str, list[int]] = {}
        for prefix, begin, _end in lines:
            by_video.setdefault(prefix, []).append(begin)
        loaders, lengths, names, times, centres = [], [], [], [], []
        offset = 0
        for prefix in sorted(by_video):
            first = min(by_video[prefix])
            last = max(by_video[prefix]) + lead + tail
            paths = [human_frame_path(images, prefix, f) for f in range(first, last + 1)]
            loaders.append(lambda paths=paths: np.stack(
                [np.moveaxis(read_jpg(p, size=entry.shape, resample="bicubic"), -1, 0) for p in paths]))
            lengths.append(len(paths))
            names.append(prefix)
            times.append(np.arange(first, last + 1))
            centres += [offset + (b - first) + lead for b in sorted(by_video[prefix])]
            offset += len(paths)
        frames = ClipFrames(loaders, lengths, (3, *entry.shape), names)
        splits[split] = SplitData(frames=frames, times=np.concatenate(times) if times else np.zeros(0, np.int64),
                                  segments=frames.segments(), centres=np.asarray(centres, np.int64))
    return Prepared(("y", "x"), _pixel_coords(*entry.shape), LATLON_UNITS, "uint8", splits,
                    {"train.txt": sha256_file(src / "train.txt"), "test.txt": sha256_file(src / "test.txt")})


Builder = Callable[[DatasetEntry, dict[str, Any], Path, bool], Prepared]

# catalog.toml's `builder` key -> the function that reads that layout
BUILDERS: dict[str, Builder] = {
    "weatherbench": weatherbench,
    "taxibj": taxibj,
    "kth": kth,
    "kitticaltech": kitticaltech,
    "human36m": human36m,
    "era5_sample": era5_sample,
    "flow_sample": flow_sample,
    "kth_sample": kth_sample,
    "radar_sample": radar_sample,
    "moving_mnist": moving_mnist,
}


def builder_for(entry: DatasetEntry) -> Builder:
    """The builder the entry names; a UsageError for an entry without one (a user dataset)."""
    try:
        return BUILDERS[entry.builder]
    except KeyError:
        raise UsageError(f"dataset {entry.name!r} names no known builder ({entry.builder!r}); "
                         f"catalog builders: {', '.join(sorted(BUILDERS))}") from None
