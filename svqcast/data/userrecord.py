"""The user catalog record of a prepared file: a `DatasetEntry` table plus provenance.

Besides the fields every catalog entry has, `extra` keeps what a user dataset needs later:
`user` (marks it in `datasets list`), `time_kind`, the time step label (`6h`, `1M`, `1Y`;
calendar steps have no fixed length, `time_step_seconds` is then their mean length),
the grid's latitude order and longitude convention (forecasts keep them), the input files
with their size and sha256, and the svqcast version that prepared it.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from svqcast._version import __version__
from svqcast.data.splitting import Window
from svqcast.sources.calendars import TimeStep
from svqcast.sources.source import Source


def _describe_range(times: np.ndarray, a: int, b: int) -> str:
    if np.issubdtype(times.dtype, np.datetime64):
        lo, hi = (str(np.datetime64(times[i], "s")).replace("T00:00:00", "") for i in (a, b - 1))
        return f"{lo} .. {hi} ({b - a} steps)"
    return f"frames {a}..{b - 1} ({b - a} frames)"


def _absolute(path: str) -> str:
    """Local paths (and globs) as absolute paths, so the provenance holds from any directory."""
    return path if "://" in path else os.path.abspath(os.path.expanduser(path))


def grid_conventions(src: Source) -> dict[str, Any]:
    """Latitude order and longitude convention of a lat/lon grid (kept in forecasts)."""
    if src.dims != ("lat", "lon"):
        return {}
    lat, lon = src.coords["lat"], src.coords["lon"]
    return {
        "lat_order": "ascending" if len(lat) < 2 or lat[1] > lat[0] else "descending",
        "lon_convention": "-180..180" if float(lon.min()) < 0 else "0..360",
    }


def _grid_text(src: Source) -> str:
    y, x = (src.coords[d] for d in src.dims)
    return f"{len(y)} x {len(x)} ({src.dims[0]} {y[0]:g}..{y[-1]:g}, {src.dims[1]} {x[0]:g}..{x[-1]:g})"


def build_record(name: str, src: Source, step: TimeStep | None, window: Window,
                 ranges: dict[str, tuple[int, int]], files: dict[str, dict[str, Any]]) -> dict[str, Any]:
    video = src.kind == "video"
    seconds = step.nominal_seconds if step is not None else (1.0 / src.fps if src.fps else None)
    splits = {k: _describe_range(src.times, a, b) for k, (a, b) in ranges.items()}
    extra: dict[str, Any] = {
        "user": True,
        "time_kind": "datetime" if src.is_datetime else "frame",
        "time_step": step.label if step is not None else None,
        "calendar_step": bool(step is not None and step.is_calendar),
        "source_path": _absolute(src.path),
        "source_files": files,
        "prepared_by": f"svqcast {__version__}",
        **grid_conventions(src),
    }
    record: dict[str, Any] = {
        "name": name,
        "title": f"user dataset prepared from {src.path}",
        "kind": src.kind,
        "variables": [{"name": c, "long_name": ln, "units": u}
                      for c, ln, u in zip(src.channels, src.long_names, src.units, strict=True)],
        "dims": list(src.dims),
        "shape": [len(src.coords[d]) for d in src.dims],
        "grid": _grid_text(src),
        "time_step_seconds": seconds,
        "t_in": window.t_in, "t_out": window.t_out, "idx_in": window.idx_in, "idx_out": window.idx_out,
        "splits": splits, "official_splits": dict(splits),
        "select": {"ranges": {k: list(v) for k, v in ranges.items()}},
        "official_select": {"ranges": {k: list(v) for k, v in ranges.items()}},
        "source": _absolute(src.path), "urls": [], "size": f"{len(src.times)} x {len(src.channels)} x "
                                                      f"{' x '.join(str(len(src.coords[d])) for d in src.dims)}",
        "citation": "user data", "licence": "as the source data",
        "normalisation": "none" if video else "zscore",
        "clip_range": [0.0, 1.0] if video else None,
        "notes": list(src.notes), "extra": {k: v for k, v in extra.items() if v is not None},
    }
    return {k: v for k, v in record.items() if v is not None}
