"""One vocabulary: the names a variable or a coordinate goes by in the files people bring.

Every reader and writer asks here: which input variable is the model's `t2m` (`ALIASES`),
what a forecast writes as its CF standard name, long name and WeatherBench2 name
(`VOCABULARY`), what a `--var-map` says, and which names mean latitude, longitude, time or level.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from svqcast.errors import MismatchError, UsageError

# Coordinate names, lower case. LAT/LON_NAMES are geographic; a grid's y/x axis may also be a
# rotated-pole or pixel axis (GRID_Y/X_NAMES), which prepare accepts and predict's grid match does not.
LAT_NAMES = ("lat", "latitude", "nav_lat", "lats")
LON_NAMES = ("lon", "longitude", "nav_lon", "lons", "long")
GRID_Y_NAMES = ("lat", "latitude", "nav_lat", "rlat", "y")
GRID_X_NAMES = ("lon", "longitude", "nav_lon", "rlon", "x")
TIME_NAMES = ("time", "valid_time", "t", "date", "datetime", "time_counter")  # time_counter: NEMO
LEVEL_NAMES = ("level", "plev", "lev", "pressure", "pressure_level", "isobaricinhpa", "height", "depth")
# forecast files: the initialisation, the lead time, the ensemble member
INIT_NAMES = ("time", "init_time", "forecast_reference_time", "initialization_time", "reference_time")
LEAD_NAMES = ("lead_time", "prediction_timedelta", "step", "forecast_period", "lead")
MEMBER_NAMES = ("realization", "member", "number", "ensemble", "ens")

@dataclass(frozen=True)
class Term:
    """One physical variable: its names in CF, in WeatherBench2 and in the files people bring."""

    standard_name: str | None  # CF standard name
    long_name: str
    wb2: str  # WeatherBench2's variable name (its zarr stores and results files)
    aliases: tuple[str, ...]  # other names in the wild, WB2's included, in the order they are tried
    height_m: float | None = None  # CF scalar height coordinate of a near-surface variable


# The vocabulary, keyed by svqcast's canonical (ECMWF short) name. Matching is case-insensitive.
VOCABULARY: dict[str, Term] = {
    "t2m": Term("air_temperature", "2 metre temperature", "2m_temperature",
                ("2t", "2m_temperature", "tas", "air_temperature_2m", "t2", "temperature_2m",
                 "2m_air_temperature", "temp2m", "var167"), 2.0),
    "u10": Term("eastward_wind", "10 metre U wind component", "10m_u_component_of_wind",
                ("10u", "10m_u_component_of_wind", "uas", "u_10m", "eastward_wind_10m"), 10.0),
    "v10": Term("northward_wind", "10 metre V wind component", "10m_v_component_of_wind",
                ("10v", "10m_v_component_of_wind", "vas", "v_10m", "northward_wind_10m"), 10.0),
    "tcc": Term("cloud_area_fraction", "total cloud cover", "total_cloud_cover",
                ("total_cloud_cover", "clt", "cloud_cover")),
    "r": Term("relative_humidity", "relative humidity", "relative_humidity", ("relative_humidity", "rh", "hur")),
    "t": Term("air_temperature", "temperature", "temperature", ("temperature", "ta", "air_temperature")),
    "z": Term("geopotential", "geopotential", "geopotential", ("geopotential", "zg")),
    "tp": Term("precipitation_amount", "total precipitation", "total_precipitation",
               ("total_precipitation", "pr", "precipitation")),
}

# Views of the vocabulary that readers and writers use.
ALIASES: dict[str, tuple[str, ...]] = {name: (name, *t.aliases) for name, t in VOCABULARY.items()}  # canonical first
CF_NAMES: dict[str, tuple[str | None, str]] = {n: (t.standard_name, t.long_name) for n, t in VOCABULARY.items()}
WB2_NAMES: dict[str, str] = {n: t.wb2 for n, t in VOCABULARY.items()}
HEIGHT_M: dict[str, float] = {n: t.height_m for n, t in VOCABULARY.items() if t.height_m is not None}


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
                raise MismatchError(
                    f"{src}: no variable for the model's '{ch}' (looked for {looked}); the file has "
                    f"{', '.join(data_vars) or 'no data variables'}; name it with `var_map` NAME={ch}"
                )
        resolved[ch] = chosen
    return resolved
