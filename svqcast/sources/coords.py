"""One coordinate guesser: which dimension of a file is time, latitude, longitude, level, the
initialisation, the lead time or the ensemble member, from names (`svqcast.sources.lexicon`) and
CF attributes (`standard_name`, `axis`, `units`).

A file the guesser gets wrong is fixed by the user, not by code: `--coords lat=y,lon=x` (every
reading command) renames the file's coordinates to the roles' canonical names before anything
else reads them, so every reader downstream sees the same, ordinary names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from svqcast.errors import DataError, UsageError
from svqcast.sources.lexicon import (
    INIT_NAMES,
    LAT_NAMES,
    LEAD_NAMES,
    LEVEL_NAMES,
    LON_NAMES,
    MEMBER_NAMES,
    TIME_NAMES,
)


@dataclass(frozen=True)
class Role:
    """What identifies one kind of coordinate."""

    canonical: str  # the name a `--coords` override renames the file's coordinate to
    names: tuple[str, ...]  # lower-case names, tried in order
    standard_names: tuple[str, ...] = ()
    axis: str | None = None  # CF `axis` attribute (never for lat/lon: a projected Y axis is no latitude)
    units: tuple[str, ...] = ()


ROLES: dict[str, Role] = {
    "time": Role("time", TIME_NAMES, ("time",), "T"),
    "lat": Role("lat", LAT_NAMES, ("latitude",), None, ("degrees_north", "degree_north", "degrees_N")),
    "lon": Role("lon", LON_NAMES, ("longitude",), None, ("degrees_east", "degree_east", "degrees_E")),
    "y": Role("y", ("y", "rlat"), ("projection_y_coordinate", "grid_latitude"), "Y"),
    "x": Role("x", ("x", "rlon"), ("projection_x_coordinate", "grid_longitude"), "X"),
    "level": Role("level", LEVEL_NAMES, ("air_pressure", "height", "depth", "model_level_number"), "Z"),
    "init": Role("time", INIT_NAMES, ("forecast_reference_time",)),
    "lead": Role("lead_time", LEAD_NAMES, ("forecast_period",)),
    "member": Role("realization", MEMBER_NAMES, ("realization",)),
}


def guess(ds: Any, role: str, among: Iterable[Any] | None = None) -> str | None:
    """The name of `ds`'s `role` coordinate (or dimension), or None: names first, then CF attributes.

    `among` restricts the candidates (a variable's dimensions, say); by default every
    coordinate and dimension of `ds` is a candidate.
    """
    spec = ROLES[role]
    candidates = [str(c) for c in (among if among is not None else [*ds.coords, *ds.dims])]
    lower = {c.lower(): c for c in candidates}
    for name in spec.names:
        if name in lower:
            return lower[name]
    for name in candidates:
        var = ds.coords.get(name) if hasattr(ds, "coords") else None
        if var is None or var.ndim > 1:
            continue
        attrs = var.attrs
        if (attrs.get("standard_name") in spec.standard_names or (spec.axis and attrs.get("axis") == spec.axis)
                or (spec.units and attrs.get("units") in spec.units)):
            return name
        if role == "time" and (np.issubdtype(var.dtype, np.datetime64) or var.dtype == object):  # object: cftime
            return name
    return None


def parse_coords(spec: str | Sequence[str] | Mapping[str, str] | None) -> dict[str, str]:
    """`"lat=y,lon=x"` (or a list of such, or a mapping) -> {role: name in the file}."""
    if spec is None:
        return {}
    items = spec.items() if isinstance(spec, Mapping) else [
        part.split("=", 1) if "=" in part else (part, "")
        for text in ([spec] if isinstance(spec, str) else spec) for part in str(text).split(",") if part.strip()]
    out: dict[str, str] = {}
    for role, name in items:
        role, name = str(role).strip(), str(name).strip()
        if role not in ROLES or not name:
            raise UsageError(f"`coords` {role}={name}: use ROLE=NAME with ROLE one of {', '.join(ROLES)} "
                             "(e.g. lat=y,lon=x)")
        if out.get(role, name) != name:
            raise UsageError(f"`coords` names {role} twice ({out[role]} and {name}); give it once")
        out[role] = name
    return out


def apply_coords(ds: Any, coords: Mapping[str, str], src: str, *, strict: bool = True) -> Any:
    """`ds` with the named coordinates renamed to their roles' canonical names.

    `strict`: a name the file does not have is a DataError naming the ones it has (with
    several files, the caller checks that each name was found in one of them).
    """
    present = {str(n) for n in [*ds.coords, *ds.dims, *ds.data_vars]}
    renames: dict[str, str] = {}
    for role, name in coords.items():
        target = ROLES[role].canonical
        if name not in present:
            if strict:
                raise DataError(f"{src}: `coords` {role}={name}: no such coordinate (it has "
                                f"{', '.join(sorted(str(c) for c in [*ds.coords, *ds.dims]))})")
            continue
        if name != target and target in present:
            raise DataError(f"{src}: `coords` {role}={name}: the file already has a '{target}'; "
                            f"rename or drop it first")
        if name != target:
            renames[name] = target
    return ds.rename(renames) if renames else ds


def check_found(coords: Mapping[str, str], datasets: Sequence[Any], what: str) -> None:
    """With several files read leniently: each named coordinate must be in at least one of them."""
    for role, name in coords.items():
        target = ROLES[role].canonical
        if not any(target in {str(n) for n in [*ds.coords, *ds.dims]} for ds in datasets if ds is not None):
            raise DataError(f"`coords` {role}={name}: none of the {what} has a coordinate '{name}'")


__all__ = ["ROLES", "Role", "apply_coords", "check_found", "guess", "parse_coords"]
