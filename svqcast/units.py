"""Physical units of user data: what can be converted without guessing, and the refusals.

Only temperatures (K, degC, degF, in their many spellings) are converted; identical units in
another spelling pass; anything else that differs is refused with the fix, never guessed.
"""

from __future__ import annotations

import numpy as np

from svqcast.errors import DataError

_KELVIN = {"k", "kelvin", "degk", "deg_k", "degreek", "degreesk", "degree_kelvin", "degrees_kelvin"}
_CELSIUS = {
    "c", "degc", "deg_c", "celsius", "degreec", "degreesc", "degree_celsius", "degrees_celsius",
    "degreecelsius", "degreescelsius", "°c", "ºc",
}
_FAHRENHEIT = {
    "f", "degf", "deg_f", "fahrenheit", "degreef", "degreesf", "degree_fahrenheit",
    "degrees_fahrenheit", "°f", "ºf",
}
_DIMENSIONLESS = {"", "1", "-", "none", "dimensionless", "count", "counts", "unitless"}


def norm_units(units: str) -> str:
    u = str(units).strip().lower().replace(" ", "").replace("°", "deg").replace("º", "deg")
    u = u.replace("degrees", "deg").replace("degree", "deg")
    return u


def temperature_kind(units: str) -> str | None:
    raw = str(units).strip().lower().replace(" ", "")
    u = norm_units(units)
    for kind, names in (("K", _KELVIN), ("degC", _CELSIUS), ("degF", _FAHRENHEIT)):
        if raw in names or u in {norm_units(n) for n in names}:
            return kind
    return None


def convert_units(values: np.ndarray, src: str | None, dst: str, name: str) -> tuple[np.ndarray, str | None]:
    """Convert `values` from `src` to `dst` units; returns (values, note or None).

    Only conversions that cannot be ambiguous are done (temperatures: K, degC, degF).
    Same units (after normalising spelling) are a no-op; anything else is refused.
    """
    what = f"variable '{name}'"
    dst_norm = norm_units(dst)
    if src is None:
        if dst_norm in _DIMENSIONLESS or dst_norm == "unknown":  # "unknown": trained on data without units
            return values, None
        raise DataError(
            f"{what} has no 'units' attribute; the model expects '{dst}'. Set it (e.g. "
            f"ds['{name}'].attrs['units'] = '{dst}') and retry"
        )
    if norm_units(src) == dst_norm:
        return values, None
    s_kind, d_kind = temperature_kind(src), temperature_kind(dst)
    if s_kind and d_kind:
        if s_kind == d_kind:
            return values, None
        kelvin = {
            "K": lambda v: v,
            "degC": lambda v: v + 273.15,
            "degF": lambda v: (v - 32.0) * (5.0 / 9.0) + 273.15,
        }[s_kind](values.astype(np.float64))
        out = {
            "K": lambda v: v,
            "degC": lambda v: v - 273.15,
            "degF": lambda v: (v - 273.15) * (9.0 / 5.0) + 32.0,
        }[d_kind](kelvin)
        return out.astype(np.float32), f"{what}: converted {src} -> {dst}"
    if norm_units(src) in _DIMENSIONLESS and dst_norm in _DIMENSIONLESS:
        return values, None
    raise DataError(
        f"{what} is in '{src}' but the model expects '{dst}' and svqcast cannot convert between "
        f"them; convert the data to {dst} (or fix the 'units' attribute) and retry"
    )


__all__ = ["convert_units", "norm_units", "temperature_kind"]


def is_physical(units: str | None) -> bool:
    """Units that say something: not missing, dimensionless or "unknown"."""
    return units is not None and norm_units(units) not in _DIMENSIONLESS | {"unknown"}


AIR_TEMPERATURE_K = (150.0, 350.0)  # what any air or sea temperature on Earth lies within


def implausible(values: np.ndarray, units: str | None) -> str | None:
    """Why `values` in `units` cannot be what they claim (None: plausible).

    Only temperatures are checked, after conversion to the model's or forecast's units: a
    degC file labelled K shows up as 0..30 "K", which no air ever had.
    """
    if units is None or temperature_kind(units) is None:
        return None
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return None
    kelvin, _ = convert_units(finite, units, "K", "check")
    lo, hi = float(kelvin.min()), float(kelvin.max())
    if lo < AIR_TEMPERATURE_K[0] or hi > AIR_TEMPERATURE_K[1]:
        return f"ranges {lo:.1f}..{hi:.1f} K, which is not a plausible air or sea temperature"
    return None
