"""CF conventions that xarray's decoding leaves to the reader: `valid_min`, `valid_max` and
`valid_range` mark the values a file declares impossible (a 1e20 over land, say). svqcast
treats them as missing, in every reader, so they can never become data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def _number(value: Any) -> float | None:
    try:
        out = float(np.asarray(value).ravel()[0])
    except (TypeError, ValueError, IndexError):
        return None
    return out if np.isfinite(out) else None


def valid_bounds(attrs: Mapping[str, Any], encoding: Mapping[str, Any]) -> tuple[float, float]:
    """(low, high) the variable's values must lie in, in decoded units (-inf/inf: unbounded).

    The attributes are written in the packed type when the variable is packed, so they go
    through the same `scale_factor` / `add_offset` as the data.
    """
    lo, hi = -np.inf, np.inf
    vr = attrs.get("valid_range", encoding.get("valid_range"))
    if vr is not None and np.asarray(vr).size == 2:
        lo, hi = (_number(v) for v in np.asarray(vr).ravel())  # type: ignore[assignment]
        lo, hi = (-np.inf if lo is None else lo), (np.inf if hi is None else hi)
    vmin = _number(attrs.get("valid_min", encoding.get("valid_min")))
    vmax = _number(attrs.get("valid_max", encoding.get("valid_max")))
    lo = vmin if vmin is not None else lo
    hi = vmax if vmax is not None else hi
    scale = _number(encoding.get("scale_factor", 1.0)) or 1.0
    offset = _number(encoding.get("add_offset", 0.0)) or 0.0
    lo, hi = lo * scale + offset, hi * scale + offset
    return (min(lo, hi), max(lo, hi)) if scale < 0 else (lo, hi)


def mask_invalid(values: np.ndarray, da: Any) -> np.ndarray:
    """`values` read from `da` with every value outside its valid range set to NaN."""
    lo, hi = valid_bounds(getattr(da, "attrs", {}), getattr(da, "encoding", {}))
    if lo == -np.inf and hi == np.inf:
        return values
    out: np.ndarray = np.array(values, dtype=np.float32 if values.dtype == np.float32 else np.float64)
    with np.errstate(invalid="ignore"):
        out[np.less(out, lo) | np.greater(out, hi)] = np.nan
    return out
