"""The standard prepared store: one chunked, compressed zarr store per prepared dataset.

    store.zarr/
      data(time, channel, <y|lat>, <x|lon>)  float32 (weather, flows; NaN = missing) or uint8 with CF
                                             scale_factor = 1/255 (video); chunks of whole frames
                                             along time (`chunk_frames`), zstd-compressed
      time(time)          int64: seconds since 1970-01-01 (datetime data) or a frame index (video)
      lat/lon or y/x      coordinates with units
      segment(time)       int32 clip id: windows never cross a clip boundary
      stride_<split>      optional per-clip sample stride of a split (KTH: 30 or 3)
      centre_<split>      optional explicit sample centres of a split (Human3.6M meta lines)
      attributes          channels, units, dims, time kind, and `splits`: {split: [start, stop)} --
                          every split is a range of the one time axis (train, then val, then test)

The store opens with plain ``xarray.open_zarr``. svqcast reads frames through zarr by time
range, so a DataLoader worker decompresses only the chunks its windows touch, and keeps the
last `CACHE_BYTES` of decoded chunks (neighbouring windows share chunks): memory stays bounded
by the batch, the prefetch and that cache, not by the dataset. A chunk holds whole frames and about `CHUNK_BYTES`
(at most `MAX_CHUNK_FRAMES` frames): big enough to compress well, small enough that a random
window decodes little more than itself. Writes are byte-reproducible (no timestamps).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from svqcast.errors import DataError

STORE = "store.zarr"
STORE_VERSION = 2
CHUNK_BYTES = 4 << 20  # about this many bytes per chunk ...
MAX_CHUNK_FRAMES = 64  # ... and never more frames than this
EPOCH = np.datetime64("1970-01-01T00:00:00", "ns")
CACHE_BYTES = 64 << 20  # decoded chunks a reader keeps (per process: each DataLoader worker has its own)
CACHED_SPAN = 2  # reads that touch more chunks than this bypass the cache


def chunk_frames(frame_shape: Sequence[int], dtype: str) -> int:
    """Frames per chunk of a store whose frames are (C, H, W) of `dtype` (the documented rule)."""
    nbytes = int(np.prod(frame_shape)) * (1 if dtype == "uint8" else 4)
    return int(max(1, min(MAX_CHUNK_FRAMES, CHUNK_BYTES // max(1, nbytes))))


@dataclass
class StoreLayout:
    """Everything the store needs besides the frames: grid, channels and the splits' axis."""

    dataset: str
    dims: tuple[str, str]
    coords: dict[str, np.ndarray]
    coord_units: dict[str, str]
    channels: list[str]
    units: list[str]
    time_kind: str  # datetime | frame
    splits: dict[str, tuple[int, int]]  # split -> [start, stop) on the store's time axis
    dtype: str = "float32"  # float32 | uint8
    attrs: dict[str, Any] = field(default_factory=dict)
    split_attrs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return max((b for _a, b in self.splits.values()), default=0)

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return (len(self.channels), *(len(self.coords[d]) for d in self.dims))  # type: ignore[return-value]

    @property
    def chunk(self) -> int:
        return chunk_frames(self.frame_shape, self.dtype)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def create_store(path: Path, layout: StoreLayout, times: np.ndarray, segments: np.ndarray,
                 per_split: dict[str, dict[str, np.ndarray]]) -> None:
    """Write the store's metadata and small arrays; `data` is created empty, for `write_frames`.

    `per_split` holds each split's optional `stride` and `centre` arrays. Everything written
    here is a function of the layout, so every part of a parted build writes the same bytes.
    """
    import zarr

    group = zarr.open_group(str(path), mode="w-", zarr_format=3)
    group.attrs.update(_jsonable({
        "Conventions": "CF-1.8", "title": f"svqcast prepared store: {layout.dataset}",
        "svqcast_store_version": STORE_VERSION, "dataset": layout.dataset, "dims": list(layout.dims),
        "channels": layout.channels, "units": layout.units, "time_kind": layout.time_kind,
        "splits": {k: list(v) for k, v in layout.splits.items()}, "split_attrs": layout.split_attrs,
        "chunk_frames": layout.chunk, **dict(sorted(layout.attrs.items())),
    }))
    n = layout.frames
    dims = ("time", "channel", *layout.dims)
    uint8 = layout.dtype == "uint8"
    data = group.create_array("data", shape=(n, *layout.frame_shape), chunks=(layout.chunk, *layout.frame_shape),
                              dtype="u1" if uint8 else "f4", fill_value=0 if uint8 else np.nan,
                              dimension_names=dims)
    data.attrs.update({"scale_factor": 1 / 255, "add_offset": 0.0} if uint8 else {})
    _small(group, "time", _encode_times(times, layout.time_kind), ("time",), _time_attrs(layout.time_kind))
    _small(group, "segment", np.asarray(segments, np.int32), ("time",),
           {"long_name": "clip id; sample windows never cross clips"})
    for d in layout.dims:
        _small(group, d, np.asarray(layout.coords[d], np.float64), (d,), {"units": layout.coord_units.get(d, "1")})
    for split, arrays in sorted(per_split.items()):
        for key, values in sorted(arrays.items()):
            _small(group, f"{key}_{split}", np.asarray(values, np.int64), (f"{key}_{split}",),
                   {"long_name": f"{key} of each sample window of the {split} split"})


def _small(group: Any, name: str, values: np.ndarray, dims: tuple[str, ...], attrs: dict[str, Any]) -> None:
    arr = group.create_array(name, shape=values.shape, chunks=(max(1, values.size),), dtype=values.dtype,
                             dimension_names=dims, fill_value=0)
    if values.size:
        arr[:] = values
    arr.attrs.update(attrs)


def _time_attrs(kind: str) -> dict[str, str]:
    if kind == "datetime":
        return {"standard_name": "time", "units": "seconds since 1970-01-01 00:00:00",
                "calendar": "proleptic_gregorian"}
    return {"long_name": "frame index", "units": "1"}


def _encode_times(times: np.ndarray, kind: str) -> np.ndarray:
    if kind == "datetime":
        return ((np.asarray(times).astype("datetime64[ns]") - EPOCH) // np.timedelta64(1, "s")).astype(np.int64)
    return np.asarray(times, dtype=np.int64)


def write_frames(path: Path, start: int, block: np.ndarray) -> None:
    """Frames `start..start+len(block)` of the store; `start` is chunk-aligned, so writers of
    different blocks never touch the same chunk (parallel workers and parts are safe)."""
    import zarr

    arr = zarr.open_array(str(Path(path) / "data"), mode="r+")
    if tuple(block.shape[1:]) != tuple(arr.shape[1:]):
        raise DataError(f"{path}: frames of shape {tuple(block.shape[1:])} do not match {tuple(arr.shape[1:])}")
    arr[start:start + len(block)] = block


class Frames:
    """Frames of one split (a time range of the store) in physical units (float32), read lazily.

    The zarr array is opened on first use in each process (never pickled), so DataLoader
    workers each open their own.
    """

    def __init__(self, path: str | Path, start: int = 0, stop: int | None = None) -> None:
        self.path = str(path)
        arr = self._array()
        self.start = int(start)
        self.stop = int(arr.shape[0] if stop is None else stop)
        self.shape = (self.stop - self.start, *arr.shape[1:])
        self.dtype = np.dtype(arr.dtype)
        self.scale = float(arr.attrs.get("scale_factor", 1.0))
        self.add = float(arr.attrs.get("add_offset", 0.0))

    def _array(self) -> Any:
        import zarr

        arr = getattr(self, "_arr", None)
        if arr is None:
            try:
                arr = zarr.open_array(str(Path(self.path) / "data"), mode="r")
            except (OSError, ValueError, KeyError, FileNotFoundError) as exc:
                raise DataError(f"{self.path}: not a readable svqcast store ({type(exc).__name__}); run "
                                "`svqcast prepare` again") from None
            self._arr = arr
        return arr

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_arr", "_cache")}

    def _chunk(self, k: int) -> np.ndarray:
        """Chunk `k` of the data, decoded, from a per-process LRU cache of about `CACHE_BYTES`:
        zarr decodes whole chunks, and neighbouring windows share them, so a shuffled epoch over a
        store that fits the cache decodes each chunk once instead of once per window."""
        cache: OrderedDict[int, np.ndarray] | None = getattr(self, "_cache", None)
        if cache is None:
            cache = OrderedDict()
            self._cache = cache
        hit = cache.get(k)
        if hit is not None:
            cache.move_to_end(k)
            return hit
        arr = self._array()
        per = int(arr.chunks[0])
        value = np.asarray(arr[k * per:(k + 1) * per])
        cache[k] = value
        while len(cache) > 1 and sum(v.nbytes for v in cache.values()) > CACHE_BYTES:
            cache.popitem(last=False)
        return value

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, index: np.ndarray | Sequence[int] | slice) -> np.ndarray:
        """Frames at split-relative `index`: one contiguous read spanning them, then a take
        (a sample window is a short run of nearby frames)."""
        if isinstance(index, slice):
            a, b, step = index.indices(len(self))
            return self.read_range(a, b)[::step] if step != 1 else self.read_range(a, b)
        index = np.asarray(index, dtype=np.int64)
        if index.size == 0:
            return np.zeros((0, *self.shape[1:]), np.float32)
        if index.min() < 0 or index.max() >= len(self):
            raise IndexError(f"frame index out of range for {len(self)} frames")
        lo, hi = int(index.min()), int(index.max()) + 1
        return self.read_range(lo, hi)[index - lo]

    def read_range(self, a: int, b: int) -> np.ndarray:
        lo, hi = self.start + a, self.start + b
        arr = self._array()
        per = int(arr.chunks[0])
        first, last = lo // per, (hi - 1) // per
        if hi <= lo or last - first >= CACHED_SPAN:  # long reads (statistics, scans) go straight through
            block = np.asarray(arr[lo:hi])
        else:  # a sample window: its one or two chunks, decoded once per process and kept a while
            block = np.concatenate([self._chunk(k) for k in range(first, last + 1)])[lo - first * per:hi - first * per]
        out = block.astype(np.float32)
        if self.scale != 1.0 or self.add != 0.0:
            out *= np.float32(self.scale)
            out += np.float32(self.add)
        return out


@dataclass
class StoreMeta:
    """The small arrays of one split (read eagerly; the frames stay on disk)."""

    times: np.ndarray
    segments: np.ndarray
    strides: np.ndarray | None
    centres: np.ndarray | None
    channels: list[str]
    units: list[str]
    coords: dict[str, np.ndarray]
    dims: tuple[str, str]
    attrs: dict[str, Any]
    start: int = 0
    stop: int = 0


def open_group(path: str | Path) -> Any:
    import zarr

    if not Path(path).is_dir():
        raise DataError(f"{path}: the prepared store is missing; run `svqcast prepare` for this dataset")
    try:
        return zarr.open_group(str(path), mode="r")
    except (OSError, ValueError, KeyError, FileNotFoundError) as exc:
        raise DataError(f"{path}: not a readable svqcast store ({type(exc).__name__}); run `svqcast prepare` "
                        "again") from None


def read_meta(path: str | Path, split: str) -> StoreMeta:
    """Times, segments, channels, grid and sample tables of `split` of the store at `path`."""
    group = open_group(path)
    attrs = dict(group.attrs)
    try:
        start, stop = (int(v) for v in attrs["splits"][split])
        dims = tuple(attrs["dims"])
        raw_t = np.asarray(group["time"][start:stop], dtype=np.int64)
        times = (EPOCH + raw_t.astype("timedelta64[s]").astype("timedelta64[ns]")
                 if attrs["time_kind"] == "datetime" else raw_t)
        names = set(group.array_keys())
        return StoreMeta(
            times=times, segments=np.asarray(group["segment"][start:stop], dtype=np.int64),
            strides=np.asarray(group[f"stride_{split}"][:], np.int64) if f"stride_{split}" in names else None,
            centres=np.asarray(group[f"centre_{split}"][:], np.int64) if f"centre_{split}" in names else None,
            channels=[str(c) for c in attrs["channels"]], units=[str(u) for u in attrs["units"]],
            coords={d: np.asarray(group[d][:], dtype=np.float64) for d in dims}, dims=dims,
            attrs={**attrs, **(attrs.get("split_attrs") or {}).get(split, {})}, start=start, stop=stop,
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise DataError(f"{path}: the store does not describe split {split!r} ({type(exc).__name__}: {exc}); "
                        "run `svqcast prepare --force`") from None


def open_frames(path: str | Path, split: str | None = None) -> Frames:
    """The frames of `split` (all frames when None) of the store at `path`."""
    if split is None:
        return Frames(path)
    meta = read_meta(path, split)
    return Frames(path, meta.start, meta.stop)


def open_split(path: str | Path, split: str) -> Any:
    """One split of a prepared dataset as a lazy, CF-decoded `xarray.Dataset`: `data(time, channel,
    y, x)` with `channel` names, `units` per channel, `segment`, the grid, and the store's and the
    split's attributes. `path` is the prepared directory or its store."""
    import xarray as xr

    store = Path(path) / STORE if (Path(path) / STORE).is_dir() else Path(path)
    meta = read_meta(store, split)
    ds = xr.open_zarr(str(store), consolidated=False).isel(time=slice(meta.start, meta.stop))
    keep = ["data", "segment", *meta.dims]
    ds = ds[[v for v in ds.variables if v in keep or v == "time"]]
    ds = ds.assign_coords(channel=("channel", meta.channels), units=("channel", meta.units))
    ds.attrs = {k: v for k, v in meta.attrs.items() if k not in ("split_attrs", "splits")}
    ds.attrs["split"] = split
    return ds


__all__ = ["CHUNK_BYTES", "EPOCH", "Frames", "MAX_CHUNK_FRAMES", "STORE", "STORE_VERSION", "StoreLayout",
           "StoreMeta", "chunk_frames", "create_store", "open_frames", "open_split", "read_meta", "write_frames"]
