"""What `svqcast score` scores: a forecast field with its truth, or one derived from two.

A `Field` is a variable (or one level of it), or a quantity WeatherBench2 derives from the
two wind components when both are forecast: the wind speed ``sqrt(u^2 + v^2)``, scored like
any variable, and the wind vector, whose error is the length of the vector difference (its
RMSE is WeatherBench2's wind-vector RMSE; it has no bias and no ACC).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from svqcast.sources.forecast_files import ForecastView
from svqcast.sources.levels import level_label
from svqcast.verify.truthfiles import ClimatologyFile, Truth, in_forecast_units

#: (u name, v name) -> the prefix of the derived names (WeatherBench2's: 10m_wind_speed, wind_vector)
WIND_PAIRS = {
    ("10m_u_component_of_wind", "10m_v_component_of_wind"): "10m_wind",
    ("u10", "v10"): "10m_wind",
    ("100m_u_component_of_wind", "100m_v_component_of_wind"): "100m_wind",
    ("u_component_of_wind", "v_component_of_wind"): "wind",
    ("u", "v"): "wind",
}


def _combine(arrays: list[np.ndarray], kind: str) -> np.ndarray:
    if kind == "scalar":
        return arrays[0]
    if kind == "speed":
        return np.hypot(arrays[0], arrays[1])
    return np.stack(arrays)  # vector: (2, n, H, W)


@dataclass
class Field:
    """One scored quantity: its name, the forecast fields and truths it is made of, and how."""

    key: str
    variable: str
    level: float | None
    parts: list[str]  # keys of ForecastView.data
    truths: list[Truth]
    kind: str  # "scalar" | "speed" | "vector"
    clim: ClimatologyFile | None
    units: str | None
    truth_source: str

    @property
    def truth_name(self) -> str:
        return ",".join(t.name for t in self.truths)

    def observe(self, times: np.ndarray, notes: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(truth at the `times` it has, in the forecast's units; mask of those times). A time
        whose truth has no valid cell at all counts as missing."""
        mask = np.logical_and.reduce([t.found(times) for t in self.truths])
        if not mask.any():
            return np.empty((0,)), mask
        arrays = [in_forecast_units(t.frames(times[mask])[0], t.units, self.units, t.name, notes)
                  for t in self.truths]
        obs = _combine(arrays, self.kind)
        some = np.isfinite(obs).any(axis=(-2, -1))
        some = some.all(axis=0) if self.kind == "vector" else some
        mask[np.flatnonzero(mask)[~some]] = False
        return obs[..., some, :, :], mask

    def forecast(self, fv: ForecastView, i: int, leads: np.ndarray) -> np.ndarray:
        arrays = [np.asarray(fv.data[p][i].values, dtype=np.float64)[leads] for p in self.parts]
        return _combine(arrays, self.kind)

    def climate(self, valid: np.ndarray, notes: list[str]) -> np.ndarray | None:
        if self.clim is None:
            return None
        return in_forecast_units(self.clim.at(valid), self.clim.units, self.units, self.key, notes, "climatology")


def field_errors(f: np.ndarray, o: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(squared error, absolute error, error, valid cells) of a field: the valid cells are those
    finite in forecast and truth; a vector's error is the length of the vector difference."""
    with np.errstate(invalid="ignore"):
        d = f - o
        if kind == "vector":
            sq = (d * d).sum(axis=0)
            return sq, np.sqrt(sq), np.full(sq.shape, np.nan), np.isfinite(sq)
        return d * d, np.abs(d), d, np.isfinite(d)


def derived_fields(fields: list[Field]) -> list[Field]:
    """Wind speed and wind vector for every level at which both components are scored."""
    scalar = {(f.variable, f.level): f for f in fields if f.kind == "scalar"}
    out: list[Field] = []
    for (u_name, v_name), prefix in WIND_PAIRS.items():
        for (var, level), u in scalar.items():
            v = scalar.get((v_name, level))
            if var != u_name or v is None or u.units != v.units:
                continue
            for kind in ("speed", "vector"):
                name = f"{prefix}_{kind}"
                out.append(Field(level_label(name, level), name, level, [*u.parts, *v.parts], [*u.truths, *v.truths],
                                 kind, None, u.units, u.truth_source))
    return out


__all__ = ["WIND_PAIRS", "Field", "derived_fields", "field_errors"]
