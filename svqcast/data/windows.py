"""Sample construction (index arithmetic) and the torch Dataset of (input, target) clips.

Two sample rules, both over the frames of one split *after* temporal subsampling:

* ``"official"`` replays OpenSTL/SVQ's WeatherBench loader exactly: the time axis of a split
  is subsampled with ``isel(time=slice(None, -1, step))`` -- the ``-1`` drops the last raw
  step -- and the valid centres are ``range(-idx_in[0], n - idx_out[-1] - 1)``: the extra
  ``-1`` is an off-by-one that loses one more sample. Hourly 2010-2018: train 52,559,
  val 8,759, test 17,495 (docs/reference/official-behaviour.md §6.1).
* ``"svqcast"`` (the default) keeps every complete window: subsample with
  ``slice(None, None, step)`` and centres ``range(-min(idx_in), n - max(idx_out))``.
  Hourly 2010-2018: 52,561 / 8,761 / 17,497.

A *centre* ``c`` is the index of the last input frame; a sample is the frames ``c + idx_in``
(inputs) and ``c + idx_out`` (targets). Stores made of several clips (videos, pre-cut
windows) carry a ``segment`` id per frame; a window never crosses a segment boundary and,
per segment, starts are scanned backwards from the end with the dataset's stride (the
OpenSTL KTH rule: stride 30, or 3 for jogging/running).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from svqcast.data.masks import fill_missing
from svqcast.data.store import Frames
from svqcast.errors import UsageError

RULES = ("svqcast", "official")


def subsample_indices(n_raw: int, step: int, rule: str = "svqcast") -> np.ndarray:
    """Indices of the raw steps kept by temporal subsampling (`step` raw steps apart)."""
    _check_rule(rule)
    stop = n_raw - 1 if rule == "official" else n_raw
    return np.arange(0, max(stop, 0), step, dtype=np.int64)


def window_centres(n: int, idx_in: Sequence[int], idx_out: Sequence[int], rule: str = "svqcast",
                   stride: int = 1) -> np.ndarray:
    """Valid centres on a single contiguous axis of `n` stored frames (forward scan)."""
    _check_rule(rule)
    lo = -min(min(idx_in), 0)
    hi = n - max(max(idx_out), 0)
    if rule == "official":
        hi -= 1
    return np.arange(lo, max(hi, lo), stride, dtype=np.int64)


def segment_centres(segments: np.ndarray, idx_in: Sequence[int], idx_out: Sequence[int],
                    strides: Sequence[int] | int = 1) -> np.ndarray:
    """Centres for a store made of several contiguous segments (clips).

    Within each segment the *start* (first needed frame) is scanned backwards from the end:
    ``L - span, L - span - stride, ... >= 0``, as OpenSTL's KTH loader does. Returned
    centres are global frame indices, sorted ascending.
    """
    segments = np.asarray(segments)
    if segments.size == 0:
        return np.zeros(0, dtype=np.int64)
    lo = min(min(idx_in), 0)
    hi = max(max(idx_out), 0)
    span = hi - lo + 1
    change = np.flatnonzero(np.diff(segments)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [segments.size]])
    out: list[np.ndarray] = []
    for k, (a, b) in enumerate(zip(starts, ends, strict=True)):
        stride = strides if isinstance(strides, int) else int(strides[k])
        length = int(b - a)
        if length < span:
            continue
        first = np.arange(length - span, -1, -stride, dtype=np.int64)[::-1]
        out.append(a + first - lo)
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _check_rule(rule: str) -> None:
    if rule not in RULES:

        raise UsageError(f"unknown sample rule {rule!r}: use one of {', '.join(RULES)}")


class WindowDataset(Dataset):
    """Normalised (input, target) clips from one prepared split, read lazily.

    The frames are a time range (`span`) of the dataset's zarr store, opened on first access
    in each process (never pickled, so DataLoader workers each open their own) and read one
    window at a time: memory is bounded by the batch and the prefetch, not the dataset.
    ``ds[i]`` -> ``(x, y)`` float32 tensors ``(T_in, C, H, W)`` and
    ``(T_out, C, H, W)``, ``(frame * scale + offset - mean) / std`` per channel.

    Where the store records missing cells (`missing_ok`: a static mask `valid`, allowed gaps),
    they are filled with 0, the channel's training mean, in the inputs, and stay NaN in the
    targets (and so do cells outside the mask), so the loss and every score leave them out.
    Anywhere else a NaN is a fault, passed on for the training loop to name.
    """

    def __init__(self, path: str | Path, centres: np.ndarray, idx_in: Sequence[int], idx_out: Sequence[int],
                 mean: Sequence[float], std: Sequence[float], spec: Any, times: np.ndarray,
                 valid: np.ndarray | None = None, missing_ok: bool = False,
                 span: tuple[int, int] | None = None) -> None:
        self.path = str(path)
        self.span = span
        self.centres = np.asarray(centres, dtype=np.int64)
        self.idx_in = np.asarray(idx_in, dtype=np.int64)
        self.idx_out = np.asarray(idx_out, dtype=np.int64)
        self._mean = np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
        self._std = np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)
        self.spec = spec
        self._times = np.asarray(times)
        self._frames: Any = None  # opened lazily per process
        self.valid = valid  # (C, H, W) static mask, or None
        self.missing_ok = missing_ok or valid is not None

    # -- pickling: drop the open store; each worker reopens it -----------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_frames"] = None
        return state

    def __len__(self) -> int:
        return int(self.centres.size)

    def _open(self) -> Any:
        if self._frames is None:

            self._frames = Frames(self.path, *(self.span or (0, None)))
        return self._frames

    def raw(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample `i` in physical units (float32, not normalised)."""
        c = int(self.centres[self._check_index(i)])
        frames = self._open()
        return frames.read(c + self.idx_in), frames.read(c + self.idx_out)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.raw(i)
        x = (x - self._mean) / self._std
        y = (y - self._mean) / self._std
        if self.missing_ok:
            x = fill_missing(x)
            if self.valid is not None:
                y = np.where(self.valid, y, np.float32(np.nan))
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(
            np.ascontiguousarray(y, dtype=np.float32))

    def times(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(input_times, target_times): datetime64[ns], or integer frame indices for video."""
        c = int(self.centres[self._check_index(i)])
        return self._times[c + self.idx_in], self._times[c + self.idx_out]

    def _check_index(self, i: int) -> int:
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"sample {i} out of range for {n} samples")
        return i

    def __repr__(self) -> str:
        return (f"WindowDataset({self.spec.dataset!r}, samples={len(self)}, t_in={len(self.idx_in)}, "
                f"t_out={len(self.idx_out)}, path={self.path!r})")
