"""One vocabulary: the names a variable or a coordinate goes by in the files people bring.

Every reader and writer asks here: which input variable is the model's `t2m` (`ALIASES`),
what a `--var-map` says, and which names mean latitude, longitude, time or level.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from svqcast.errors import DataError, UsageError

# Coordinate names, lower case. LAT/LON_NAMES are geographic; a grid's y/x axis may also be a
# rotated-pole or pixel axis (GRID_Y/X_NAMES), which prepare accepts and predict's grid match does not.
LAT_NAMES = ("lat", "latitude", "nav_lat", "lats")
LON_NAMES = ("lon", "longitude", "nav_lon", "lons", "long")
GRID_Y_NAMES = ("lat", "latitude", "nav_lat", "rlat", "y")
GRID_X_NAMES = ("lon", "longitude", "nav_lon", "rlon", "x")
TIME_NAMES = ("time", "valid_time", "t", "date", "datetime")
LEVEL_NAMES = ("level", "plev", "lev", "pressure", "pressure_level", "isobaricinhpa", "height", "depth")

# Equivalent variable names (case-insensitive). The first name is the canonical one.
ALIASES: dict[str, tuple[str, ...]] = {
    "t2m": (
        "t2m", "2t", "2m_temperature", "tas", "air_temperature_2m", "t2", "temperature_2m",
        "2m_air_temperature", "temp2m", "var167",
    ),
    "u10": ("u10", "10u", "10m_u_component_of_wind", "uas", "u_10m", "eastward_wind_10m"),
    "v10": ("v10", "10v", "10m_v_component_of_wind", "vas", "v_10m", "northward_wind_10m"),
    "tcc": ("tcc", "total_cloud_cover", "clt", "cloud_cover"),
    "r": ("r", "relative_humidity", "rh", "hur"),
    "t": ("t", "temperature", "ta", "air_temperature"),
    "z": ("z", "geopotential", "zg"),
    "tp": ("tp", "total_precipitation", "pr", "precipitation"),
}


def parse_var_map(pairs: Sequence[str] | Mapping[str, str] | None) -> dict[str, str]:
    """`["a=b", ...]` -> {"a": "b"}; the CLI's repeatable `--var-map`."""
    if pairs is None:
        return {}
    if isinstance(pairs, Mapping):
        return {str(k): str(v) for k, v in pairs.items()}
    out: dict[str, str] = {}
    for item in pairs:
        for part in str(item).split(","):
            if not part.strip():
                continue
            if part.count("=") != 1:
                raise UsageError(f"`var_map` expects INPUT_NAME=MODEL_NAME, got '{part}'")
            a, b = (s.strip() for s in part.split("=", 1))
            if not a or not b:
                raise UsageError(f"`var_map` expects INPUT_NAME=MODEL_NAME, got '{part}'")
            if out.get(a, b) != b:
                raise UsageError(f"`var_map` maps '{a}' twice ({out[a]} and {b}); give it once")
            out[a] = b
    return out


def resolve_variables(ds: Any, channels: list[str], var_map: Mapping[str, str], src: str) -> dict[str, str]:
    data_vars = [str(v) for v in ds.data_vars]
    lower = {v.lower(): v for v in data_vars}
    resolved: dict[str, str] = {}
    for ch in channels:
        chosen: str | None = None
        for a, b in var_map.items():  # either order: INPUT=MODEL or MODEL=INPUT
            if b == ch and a in data_vars:
                chosen = a
            elif a == ch and b in data_vars:
                chosen = b
        if chosen is None:
            names = next((al for al in ALIASES.values() if ch.lower() in al), (ch,))
            names = (ch,) + tuple(n for n in names if n != ch)
            for n in names:
                if n.lower() in lower:
                    chosen = lower[n.lower()]
                    break
            if chosen is None:
                looked = ", ".join(names[:6]) + (" ..." if len(names) > 6 else "")
                raise DataError(
                    f"{src}: no variable for the model's '{ch}' (looked for {looked}); the file has "
                    f"{', '.join(data_vars) or 'no data variables'}; name it with `var_map` NAME={ch}"
                )
        resolved[ch] = chosen
    return resolved
