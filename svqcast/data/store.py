"""The standard prepared store: one netCDF4 file per split.

    data(time, channel, <y|lat>, <x|lon>)  float32 (weather, flows) or uint8 with CF
                                           scale_factor = 1/255 (video); contiguous, uncompressed,
                                           so it can be memory-mapped
    time(time)          int64: seconds since 1970-01-01 (datetime data) or a frame index (video)
    channel(channel)    channel names; units(channel): per-channel units
    lat/lon or y/x      coordinates with units
    segment(time)       int32 clip id: windows never cross a clip boundary
    stride(segment_id)  optional per-clip sample stride (KTH: 30 or 3)
    centre(sample)      optional explicit sample centres (Human3.6M meta lines)

The file opens with plain ``xarray.open_dataset`` (CF-decoded). svqcast reads it through a
``numpy.memmap`` of the HDF5 dataset's byte range, so a DataLoader touches only the frames
it needs. Files are byte-reproducible: no timestamps, fixed attribute order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from svqcast.errors import DataError
from svqcast.fsutil import atomic_path

STORE_VERSION = 1
EPOCH = np.datetime64("1970-01-01T00:00:00", "ns")


@dataclass
class StoreLayout:
    """Everything a split file needs besides the frames."""

    dataset: str
    split: str
    dims: tuple[str, str]
    coords: dict[str, np.ndarray]
    coord_units: dict[str, str]
    channels: list[str]
    units: list[str]
    time_kind: str  # datetime | frame
    dtype: str = "float32"  # float32 | uint8
    attrs: dict[str, Any] = field(default_factory=dict)


def write_store(path: str | Path, layout: StoreLayout, frames: Any, times: np.ndarray,
                segments: np.ndarray | None = None, strides: np.ndarray | None = None,
                centres: np.ndarray | None = None, chunk: int = 512) -> None:
    """Write a split file atomically. `frames` is anything sliceable as (time, C, H, W)
    (a numpy array, a memmap or a lazy reader with ``__getitem__``), in physical units for
    float32 stores and in 0..255 counts for uint8 stores."""
    import netCDF4

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(times)
    h, w = (len(layout.coords[d]) for d in layout.dims)
    c = len(layout.channels)
    with atomic_path(path) as tmp:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
            nc.setncatts({
                "Conventions": "CF-1.8",
                "title": f"svqcast prepared store: {layout.dataset} {layout.split}",
                "svqcast_store_version": np.int32(STORE_VERSION),
                "dataset": layout.dataset,
                "split": layout.split,
                **{k: v for k, v in sorted(layout.attrs.items())},
            })
            nc.createDimension("time", n)
            nc.createDimension("channel", c)
            for d in layout.dims:
                nc.createDimension(d, len(layout.coords[d]))
            tv = nc.createVariable("time", "i8", ("time",))
            if layout.time_kind == "datetime":
                tv.setncatts({"standard_name": "time", "units": "seconds since 1970-01-01 00:00:00",
                              "calendar": "proleptic_gregorian"})
                secs = (np.asarray(times).astype("datetime64[ns]") - EPOCH) // np.timedelta64(1, "s")
                tv[:] = secs.astype(np.int64)
            else:
                tv.setncatts({"long_name": "frame index", "units": "1"})
                tv[:] = np.asarray(times, dtype=np.int64)
            ch = nc.createVariable("channel", str, ("channel",))
            un = nc.createVariable("units", str, ("channel",))
            un.long_name = "units of each channel"
            for k in range(c):
                ch[k] = layout.channels[k]
                un[k] = layout.units[k]
            for d in layout.dims:
                v = nc.createVariable(d, "f8", (d,))
                v.units = layout.coord_units.get(d, "1")
                v[:] = np.asarray(layout.coords[d], dtype=np.float64)
            seg = nc.createVariable("segment", "i4", ("time",))
            seg.long_name = "clip id; sample windows never cross clips"
            seg[:] = np.zeros(n, np.int32) if segments is None else np.asarray(segments, np.int32)
            if strides is not None:
                nc.createDimension("segment_id", len(strides))
                st = nc.createVariable("stride", "i4", ("segment_id",))
                st.long_name = "sample stride of each clip"
                st[:] = np.asarray(strides, np.int32)
            if centres is not None:
                nc.createDimension("sample", len(centres))
                ce = nc.createVariable("centre", "i8", ("sample",))
                ce.long_name = "index of the last input frame of each sample"
                ce[:] = np.asarray(centres, np.int64)
            dt = "u1" if layout.dtype == "uint8" else "f4"
            dv = nc.createVariable("data", dt, ("time", "channel", *layout.dims), contiguous=True)
            dv.set_auto_maskandscale(False)
            if layout.dtype == "uint8":
                dv.setncatts({"scale_factor": np.float32(1 / 255), "add_offset": np.float32(0.0)})
            dv.coordinates = "units"
            for a in range(0, n, chunk):
                block = np.asarray(frames[a:a + chunk])
                if block.shape[1:] != (c, h, w):
                    raise DataError(f"{path}: frames of shape {block.shape[1:]} do not match ({c}, {h}, {w})")
                if dt == "f4":
                    block = block.astype(np.float32, copy=False)
                    if np.isinf(block).any():  # NaN is a missing value (svqcast.data.missing); inf is broken
                        raise DataError(f"{path}: infinite values in frames {a}..{a + len(block) - 1}")
                dv[a:a + len(block)] = block


class Frames:
    """Read access to a store's ``data`` by frame index, in physical units (float32)."""

    def __init__(self, path: str | Path) -> None:
        import h5py

        self.path = str(path)
        try:
            with h5py.File(self.path, "r") as f:
                d = f["data"]
                self.shape = tuple(d.shape)
                self.dtype = d.dtype
                self.offset = d.id.get_offset()
                self.scale = float(np.asarray(d.attrs.get("scale_factor", 1.0)).reshape(-1)[0])
                self.add = float(np.asarray(d.attrs.get("add_offset", 0.0)).reshape(-1)[0])
        except (OSError, KeyError) as exc:
            raise DataError(f"{path}: not a readable svqcast store ({exc}); run `svqcast prepare` again") from None
        self._mm: np.ndarray | None = None
        self._h5: Any = None
        if self.offset is not None:
            self._mm = np.memmap(self.path, dtype=self.dtype, mode="r", offset=self.offset, shape=self.shape)
        else:  # chunked/compressed file written elsewhere: fall back to h5py reads
            self._h5 = h5py.File(self.path, "r")["data"]

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, index: np.ndarray | Sequence[int] | slice) -> np.ndarray:
        src = self._mm if self._mm is not None else self._h5
        if isinstance(index, slice):
            block = np.asarray(src[index])
        else:
            index = np.asarray(index, dtype=np.int64)
            block = np.asarray(src[index]) if self._mm is not None else _h5_take(src, index)
        out = block.astype(np.float32)
        if self.scale != 1.0 or self.add != 0.0:
            out *= np.float32(self.scale)
            out += np.float32(self.add)
        return out


    def read_range(self, a: int, b: int) -> np.ndarray:
        """Frames [a, b) by a plain file read (no memory map), so a pass over a large split
        (statistics) leaves no mapped pages behind: resident memory stays one block."""
        if self.offset is None:
            return self.read(slice(a, b))
        per = int(np.prod(self.shape[1:]))
        block = np.fromfile(self.path, dtype=self.dtype, count=(b - a) * per,
                            offset=int(self.offset) + a * per * self.dtype.itemsize)
        out = block.reshape((b - a, *self.shape[1:])).astype(np.float32)
        if self.scale != 1.0 or self.add != 0.0:
            out *= np.float32(self.scale)
            out += np.float32(self.add)
        return out


def _h5_take(dset: Any, index: np.ndarray) -> np.ndarray:
    uniq, inv = np.unique(index, return_inverse=True)
    return np.asarray(dset[uniq])[inv]


def open_frames(path: str | Path) -> Frames:
    return Frames(path)


@dataclass
class StoreMeta:
    """The small arrays of a split file (read eagerly; the frames stay on disk)."""

    times: np.ndarray
    segments: np.ndarray
    strides: np.ndarray | None
    centres: np.ndarray | None
    channels: list[str]
    units: list[str]
    coords: dict[str, np.ndarray]
    dims: tuple[str, str]
    attrs: dict[str, Any]


def read_meta(path: str | Path) -> StoreMeta:
    import netCDF4

    if not os.path.exists(path):
        raise DataError(f"{path}: prepared split is missing; run `svqcast prepare` for this dataset")
    try:
        with netCDF4.Dataset(path, "r") as nc:
            dims = tuple(nc.variables["data"].dimensions[2:])
            tv = nc.variables["time"]
            t = np.asarray(tv[:], dtype=np.int64)
            times: np.ndarray
            if getattr(tv, "units", "1").startswith("seconds since"):
                times = EPOCH + t.astype("timedelta64[s]").astype("timedelta64[ns]")
            else:
                times = t
            return StoreMeta(
                times=times,
                segments=np.asarray(nc.variables["segment"][:], dtype=np.int64),
                strides=np.asarray(nc.variables["stride"][:], np.int64) if "stride" in nc.variables else None,
                centres=np.asarray(nc.variables["centre"][:], np.int64) if "centre" in nc.variables else None,
                channels=[str(s) for s in nc.variables["channel"][:]],
                units=[str(s) for s in nc.variables["units"][:]],
                coords={d: np.asarray(nc.variables[d][:], dtype=np.float64) for d in dims},
                dims=dims,  # type: ignore[arg-type]
                attrs={k: nc.getncattr(k) for k in nc.ncattrs()},
            )
    except (OSError, KeyError, IndexError) as exc:
        raise DataError(f"{path}: not a readable svqcast store ({exc}); run `svqcast prepare` again") from None


def channel_stats(path: str | Path, chunk: int = 1024) -> tuple[list[float], list[float], int | list[int]]:
    """Per-channel mean and (population) std over time and space, accumulated in float64
    chunk by chunk, so a multi-GB training split never has to fit in memory. Missing cells
    (NaN: land, gaps) are left out; the count is per channel where they make it differ."""
    frames = open_frames(path)
    n = len(frames)
    c = frames.shape[1]
    total = np.zeros(c, np.float64)
    count = np.zeros(c, np.int64)
    for a in range(0, n, chunk):
        block = frames.read_range(a, min(n, a + chunk)).astype(np.float64)
        finite = np.isfinite(block)
        if finite.all():
            total += block.sum(axis=(0, 2, 3))
            count += block.shape[0] * block.shape[2] * block.shape[3]
        else:
            total += np.where(finite, block, 0.0).sum(axis=(0, 2, 3))
            count += finite.sum(axis=(0, 2, 3))
    if n == 0 or not count.any():
        raise DataError(f"{path}: the training split is empty; cannot compute statistics")
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    sq = np.zeros(c, np.float64)
    for a in range(0, n, chunk):
        block = frames.read_range(a, min(n, a + chunk)).astype(np.float64)
        dev = (block - mean.reshape(1, -1, 1, 1)) ** 2
        sq += (dev if np.isfinite(block).all() else np.where(np.isfinite(block), dev, 0.0)).sum(axis=(0, 2, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.sqrt(sq / count)
    counts = count.tolist()
    return mean.tolist(), std.tolist(), counts[0] if len(set(counts)) == 1 else counts
