"""Frame data (`.npy`, video, a folder of images) -> a `Source` indexed by frame number.

Frames are scaled to [0, 1] as the paper's video datasets are: 8-bit data is stored as
counts (uint8 with scale 1/255, exactly like KTH), 16-bit data divided by 65535, float data
already in [0, 1] kept. Float data outside [0, 1] is a field (radar, a simulation) rather
than an image: it is stored as float32 and z-scored with training statistics. A `.npy` is
memory-mapped, so a large array streams; videos and images are decoded once into memory.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from svqcast.errors import DataError, MissingExtraError, UsageError
from svqcast.sources.formats import classify
from svqcast.sources.source import Source


class _FrameArray:
    """(T, H, W, C) array -> (time, C, H, W) blocks, optionally scaled to float32."""

    def __init__(self, arr: np.ndarray, scale: float | None) -> None:
        self.arr = arr
        self.scale = scale

    def __len__(self) -> int:
        return int(self.arr.shape[0])

    def __getitem__(self, sl: slice) -> np.ndarray:
        block = np.moveaxis(np.asarray(self.arr[sl]), -1, 1)
        if self.scale is None:
            return np.ascontiguousarray(block)
        return block.astype(np.float32) * np.float32(self.scale)


def open_frames_source(fmt: str, paths: list[str], arg: str, resize: tuple[int, int] | None = None) -> Source:
    """Frames as a Source; `resize` (H, W) area-averages every frame; scene cuts are found and noted."""
    fps = None
    if fmt == "npy":
        arr = _load_npy(Path(paths[0]))
    elif fmt == "video":
        arr, fps = _read_video(Path(paths[0]))
    else:
        arr = _read_images([Path(p) for p in paths], arg)
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] > 4:
        raise DataError(f"{arg}: frames of shape {arr.shape}; expected (T, H, W) or (T, H, W, C) with C <= 4")
    if resize is not None:
        arr = _resize(arr, resize, arg)
    kind, dtype, scale, units = _scaling(arr, arg)
    t, h, w, c = arr.shape
    cuts = scene_cuts(arr) if kind == "video" else np.zeros(0, dtype=np.int64)
    names = ["intensity"] if c == 1 else (["red", "green", "blue", "alpha"][:c] if c in (3, 4) else
                                          [f"channel{k}" for k in range(c)])
    notes = [] if kind == "video" else [f"{arg}: float values outside [0, 1]: stored as a field and z-scored"]
    if cuts.size:
        shown = ", ".join(str(int(k)) for k in cuts[:10]) + (" ..." if cuts.size > 10 else "")
        notes.append(f"{arg}: {cuts.size} scene cut(s) before frame(s) {shown}: no window straddles them "
                     "(`allow_cuts` keeps windows across)")
    if resize is not None:
        notes.append(f"{arg}: frames area-averaged to {h}x{w}")
    return Source(
        path=arg, kind=kind, frames=_FrameArray(arr, scale), times=np.arange(t, dtype=np.int64),
        channels=names, units=[units] * c, long_names=[f"{n} level" for n in names], dims=("y", "x"),
        coords={"y": np.arange(h, dtype=np.float64), "x": np.arange(w, dtype=np.float64)},
        coord_units={"y": "1", "x": "1"}, dtype=dtype, files=list(paths), notes=notes, fps=fps, cuts=cuts,
    )


def _resize(arr: np.ndarray, size: tuple[int, int], arg: str) -> np.ndarray:
    """(T, H, W, C) frames area-averaged (PIL's box filter) to `size` (H, W), in their own dtype."""
    from PIL import Image

    h, w = size
    if not (1 <= h <= arr.shape[1] and 1 <= w <= arr.shape[2]):
        raise UsageError(f"`resize` {h}x{w}: give a size no larger than the frames' {arr.shape[1]}x{arr.shape[2]}")
    out = np.empty((arr.shape[0], h, w, arr.shape[3]), dtype=arr.dtype)
    for t in range(arr.shape[0]):
        for c in range(arr.shape[3]):
            small = np.asarray(Image.fromarray(np.asarray(arr[t, :, :, c], dtype=np.float32), mode="F")
                               .resize((w, h), Image.Resampling.BOX))
            if arr.dtype.kind in "ui":
                small = np.clip(np.rint(small), np.iinfo(arr.dtype).min, np.iinfo(arr.dtype).max)
            out[t, :, :, c] = small.astype(arr.dtype)
    return out


def scene_cuts(arr: np.ndarray, block: int = 256) -> np.ndarray:
    """Frames that start a new scene: the mean absolute change from the previous frame is an
    outlier (12 robust deviations above the median) and large in absolute terms (8 % of the
    value range). A window across a cut would teach the model a jump no physics makes."""
    if arr.shape[0] < 3:
        return np.zeros(0, dtype=np.int64)
    stride = max(1, min(arr.shape[1], arr.shape[2]) // 64)  # a coarse look is enough to see a cut
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(arr.dtype, 1.0)
    diffs, prev = [], None
    for a in range(0, arr.shape[0], block):
        frames = np.asarray(arr[a:a + block, ::stride, ::stride], dtype=np.float32) / scale
        seq = frames if prev is None else np.concatenate([prev[None], frames])
        diffs.append(np.abs(np.diff(seq, axis=0)).mean(axis=(1, 2, 3)))
        prev = frames[-1]
    d = np.concatenate(diffs)
    med = float(np.median(d))
    mad = float(np.median(np.abs(d - med))) * 1.4826 + 1e-6
    return (np.flatnonzero((d > med + 12 * mad) & (d > 0.08)) + 1).astype(np.int64)


def _scaling(arr: np.ndarray, arg: str) -> tuple[str, str, float | None, str]:
    """(kind, store dtype, scale to apply when reading, units)."""
    if arr.dtype == np.uint8:
        return "video", "uint8", None, "1"
    if arr.dtype == np.uint16:
        return "video", "float32", 1.0 / 65535.0, "1"
    if arr.dtype.kind == "f":
        lo, hi = _range(arr)
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise DataError(f"{arg}: the frames hold NaN or infinite values; fill them first")
        if lo >= 0.0 and hi <= 1.0:
            return "video", "float32", 1.0, "1"
        return "weather", "float32", 1.0, "unknown"
    raise DataError(f"{arg}: frames of dtype {arr.dtype}; use uint8, uint16 or float")


def _range(arr: np.ndarray, chunk: int = 256) -> tuple[float, float]:
    lo, hi = np.inf, -np.inf
    for a in range(0, arr.shape[0], chunk):
        block = np.asarray(arr[a:a + chunk])
        lo, hi = min(lo, float(block.min())), max(hi, float(block.max()))
    return lo, hi


def _load_npy(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:  # EOFError: an empty file (Click would call it an abort)
        raise DataError(f"{path}: not a readable .npy array ({str(exc).splitlines()[0][:120]})") from None
    if 0 in arr.shape:
        raise DataError(f"{path}: the array {tuple(arr.shape)} holds no values (a dimension of size 0)")
    return arr


def _read_video(path: Path) -> tuple[np.ndarray, float | None]:
    try:
        import av
    except ImportError:
        raise MissingExtraError("Reading video", "video", "av") from None
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate) if stream.average_rate else None
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
    except (av.error.FFmpegError, IndexError) as exc:
        raise DataError(f"{path}: cannot decode the video ({str(exc)[:120]})") from None
    if not frames:
        raise DataError(f"{path}: the video has no frames")
    arr = np.stack(frames)
    if np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2]):
        arr = arr[..., 0]
    return arr, fps


def _image_array(im: Any) -> np.ndarray:
    """One image at its own depth: 8 or 16 bit counts, 32-bit floats, colour kept as colour.

    Palette images are expanded to their colours (never to grey), 16-bit and float images keep
    their values (`_scaling` then maps 16 bit to [0, 1] and leaves floats as they are).
    """
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return np.asarray(im, dtype=np.uint16)
    if im.mode in ("F", "I"):
        return np.asarray(im, dtype=np.float32)
    if im.mode in ("L", "1", "LA"):
        return np.asarray(im.convert("L"))
    return np.asarray(im.convert("RGB"))  # RGB, RGBA (alpha dropped), palette, CMYK, YCbCr


def _read_images(paths: list[Path], arg: str) -> np.ndarray:
    from PIL import Image

    frames: list[np.ndarray] = []
    for p in paths:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)  # a bomb is refused, not read
                with Image.open(p) as im:
                    frames.append(_image_array(im))
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            raise DataError(f"{p}: the image declares more pixels than a frame can sensibly hold "
                            f"(over {Image.MAX_IMAGE_PIXELS}); is it a decompression bomb?") from None
        except OSError as exc:
            raise DataError(f"{p}: not a readable image ({exc})") from None
        if frames[-1].shape != frames[0].shape or frames[-1].dtype != frames[0].dtype:
            raise DataError(f"{p}: {frames[-1].shape} {frames[-1].dtype} differs from the first image's "
                            f"{frames[0].shape} {frames[0].dtype}; give images of one size and depth")
    if not frames:
        raise DataError(f"{arg}: no images")
    return np.stack(frames)


def frames_dataset(path: str) -> object:
    """A `.npy`, video or image folder as an xarray Dataset (time, y, x) in [0, 1] or raw
    units, one variable per channel, for `predict`: the same scaling `prepare` stores."""
    import xarray as xr

    fmt, paths = classify(str(path))
    src = open_frames_source(fmt, paths, str(path))
    block = src.frames[0:len(src.times)].astype(np.float32)
    if src.dtype == "uint8":
        block *= np.float32(1 / 255)
    data = {name: (("time", "y", "x"), block[:, k], {"units": src.units[k]}) for k, name in enumerate(src.channels)}
    return xr.Dataset(data, coords={"y": src.coords["y"], "x": src.coords["x"]})
