"""One level of a variable on levels, picked by value (predict's inputs, score's truth)."""

from __future__ import annotations

from typing import Any

import numpy as np

from svqcast.errors import DataError
from svqcast.sources.coords import guess


def level_label(var: str, level: float | None) -> str:
    """The name of one level of a variable: ``geopotential@500`` (a channel, a scored field); the
    variable's own name without a level."""
    return var if level is None else f"{var}@{level:g}"


def level_index(values: Any, level: float, name: str, src: str) -> int:
    """Position of `level` among a level coordinate's `values` (matched to a relative 1e-6); a
    level that is not there is a DataError naming the ones that are."""
    vals = np.asarray(values, dtype=np.float64)
    match = np.flatnonzero(np.abs(vals - level) <= 1e-6 * max(1.0, abs(level)))
    if match.size == 0:
        raise DataError(f"{src}: level {level:g} is not in {name!r} (levels: {', '.join(f'{v:g}' for v in vals)})")
    return int(match[0])


def pick_level(ds: Any, da: Any, level: float | None, name: str, src: str) -> Any:
    """`da` at `level` (by value) when it has a level dimension; a level-free variable is taken
    as it is (its name says its level, e.g. 2m_temperature). A level the variable lacks is a
    DataError naming the levels it has."""
    dim = guess(ds, "level", among=[str(d) for d in da.dims])
    if dim is None:
        return da
    values = np.asarray(ds[dim].values if dim in ds.coords else np.arange(da.sizes[dim]), dtype=np.float64)
    shown = ", ".join(f"{v:g}" for v in values)
    if level is None:
        if values.size == 1:
            return da.isel({dim: 0})
        raise DataError(f"{src}: '{name}' has {values.size} levels ({shown}) where one field is expected")
    return da.isel({dim: level_index(values, level, name, src)})


__all__ = ["level_index", "level_label", "pick_level"]
