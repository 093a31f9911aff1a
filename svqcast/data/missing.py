"""Missing values in a store being built: the static mask, and gaps it does not explain.

After the frames are written, a cell that holds no value in any training step is masked
(`svqcast.data.masks`). Any other missing value is a gap: an error naming the first time,
channel and cell, unless the user allowed gaps (`--allow-missing`), in which case they are
counted in stats.json and the network sees them filled like masked cells.
Only splits in which a block saw a NaN are scanned again, so complete data costs nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from svqcast.data.masks import pack_mask
from svqcast.data.store import Frames, open_frames, read_meta
from svqcast.errors import DataError


def coverage(frames: Frames, chunk: int) -> np.ndarray:
    """(C, H, W): True where a channel holds a value in at least one frame."""
    seen = np.zeros(frames.shape[1:], dtype=bool)
    for a in range(0, len(frames), chunk):
        seen |= np.isfinite(frames.read_range(a, min(len(frames), a + chunk))).any(axis=0)
    return seen


def _gaps(frames: Frames, valid: np.ndarray, chunk: int) -> tuple[int, tuple[int, int, int, int] | None]:
    """(missing values at valid cells, (frame, channel, row, column) of the first)."""
    count, first = 0, None
    for a in range(0, len(frames), chunk):
        hole = ~np.isfinite(frames.read_range(a, min(len(frames), a + chunk))) & valid
        n = int(hole.sum())
        if n and first is None:
            t, c, i, j = (int(v[0]) for v in np.nonzero(hole))
            first = (a + t, c, i, j)
        count += n
    return count, first


def check_missing(store: Path, name: str, nan_splits: set[str], chunk: int, allow_missing: bool) -> dict[str, Any]:
    """The stats.json fields of the mask and the gaps ({} when no split held a NaN)."""
    if not nan_splits:
        return {}
    meta = read_meta(store, "train")
    valid = coverage(Frames(store, meta.start, meta.stop), chunk)
    for c, ch in enumerate(meta.channels):
        if not valid[c].any():
            raise DataError(f"{name}: channel '{ch}' holds no value anywhere in the training split (the mask "
                            "leaves no valid cell); check the variable, the mask or the splits")
    gaps: dict[str, int] = {}
    for split in sorted(nan_splits):
        count, first = _gaps(open_frames(store, split), valid, chunk)
        if count and not allow_missing:
            assert first is not None
            raise DataError(_gap_message(store, name, split, first))
        if count:
            gaps[split] = count
    out: dict[str, Any] = {"mask": pack_mask(valid) if not valid.all() else None}
    if gaps:
        out["missing_filled"] = gaps
    return out


def _gap_message(store: Path, name: str, split: str, first: tuple[int, int, int, int]) -> str:
    t, c, i, j = first
    meta = read_meta(store, split)
    when = str(meta.times[t])[:19]
    ydim, xdim = meta.dims
    cell = f"{ydim} {float(meta.coords[ydim][i]):g}, {xdim} {float(meta.coords[xdim][j]):g}"
    return (f"{name}: '{meta.channels[c]}' is missing at {when} ({split} split), cell {cell}, which holds values "
            "at other times; fill the gaps, or pass `allow_missing` to fill them with the training mean "
            "(counted in stats.json)")


__all__ = ["check_missing", "coverage"]
