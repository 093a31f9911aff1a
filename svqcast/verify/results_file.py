"""`svqcast score --format netcdf`: scores as a WeatherBench2-style results file.

WeatherBench2 stores evaluation results as one data variable per forecast variable, named as
the variable (``geopotential``, ``2m_temperature``, ``10m_wind_speed``), with dimensions
``(metric, region, lead_time)`` and ``level`` for variables on levels; ``metric`` holds
"rmse", "mae", "bias", "acc" and ``lead_time`` is a time span. A file written here opens next
to one of theirs with ``xr.open_dataset`` and the two plot together. Beside each variable,
``<variable>_ci_lower`` / ``_ci_upper`` hold the bootstrap bounds (the global attributes say
how they were computed); leads counted in months, years or frames are whole numbers with a
``units`` attribute instead of time spans.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from svqcast.fsutil import atomic_path, check_output
from svqcast.verify.score_tables import SCORES


def _lead_coord(result: dict[str, Any]) -> tuple[np.ndarray, dict[str, str]]:
    rows = next(iter(result["variables"].values()))["per_lead"]
    if all(r.get("lead_time_seconds") is not None for r in rows):
        secs = np.array([r["lead_time_seconds"] for r in rows], dtype=np.float64)
        return (secs * 1e9).astype(np.int64).astype("timedelta64[ns]"), {"long_name": "lead time"}
    steps = np.array([r.get("lead_steps", k + 1) for k, r in enumerate(rows)], dtype=np.int64)
    unit = str(rows[0].get("lead", "steps")).split()[-1]
    return steps, {"long_name": "lead time", "units": unit}


def _cube(v: dict[str, Any], regions: list[str], metrics: list[str], n_leads: int,
          what: str) -> np.ndarray:
    """(metric, region, lead) of one field: the value (`what` "value") or a CI bound (0 / 1)."""
    out = np.full((len(metrics), len(regions), n_leads), np.nan)
    for r, region in enumerate(regions):
        for j, row in enumerate(v["regions"][region]["per_lead"]):
            for m, metric in enumerate(metrics):
                value = row.get(metric) if what == "value" else ((row.get("ci") or {}).get(metric) or [None, None])[
                    int(what)]
                out[m, r, j] = np.nan if value is None else float(value)
    return out


def results_dataset(result: dict[str, Any]) -> Any:
    """The `score_forecast` result as an xarray Dataset in WeatherBench2's results layout."""
    import xarray as xr

    regions = list(result["regions"])
    metrics = [m for m in SCORES if any(m in v["overall"] for v in result["variables"].values())]
    leads, lead_attrs = _lead_coord(result)
    levels = sorted({v["level"] for v in result["variables"].values() if v["level"] is not None})
    by_var: dict[str, list[tuple[float | None, dict[str, Any]]]] = {}
    for v in result["variables"].values():
        by_var.setdefault(v["variable"], []).append((v["level"], v))
    data: dict[str, Any] = {}
    for var, items in by_var.items():
        for what, suffix in (("value", ""), ("0", "_ci_lower"), ("1", "_ci_upper")):
            cubes = {lev: _cube(v, regions, metrics, leads.size, what) for lev, v in items}
            attrs = {"units": items[0][1]["units"] or ""} if not suffix else {
                "long_name": f"{'lower' if suffix.endswith('lower') else 'upper'} bound of {var}'s scores"}
            if items[0][0] is None:
                data[var + suffix] = (("metric", "region", "lead_time"), cubes[None], attrs)
                continue
            full = np.full((len(metrics), len(regions), leads.size, len(levels)), np.nan)
            for lev, cube in cubes.items():
                full[..., levels.index(lev)] = cube
            data[var + suffix] = (("metric", "region", "lead_time", "level"), full, attrs)
    coords: dict[str, Any] = {"metric": metrics, "region": regions, "lead_time": ("lead_time", leads, lead_attrs)}
    if levels:
        coords["level"] = np.asarray(levels)
    attrs = {"forecast": result["forecast"], "truth": result["truth"], "weights": result["weights"],
             "regions": json.dumps(result["regions"]), "confidence": json.dumps(result.get("confidence")),
             "init_times": int(result["init_times"]), "first_init": result["first_init"],
             "last_init": result["last_init"], "not_scored": json.dumps(result.get("not_scored") or {}),
             "Conventions": "CF-1.8"}
    return xr.Dataset(data, coords=coords, attrs=attrs)


def write_results(result: dict[str, Any], path: str | os.PathLike[str], *, overwrite: bool = False,
                  inputs: tuple[Any, ...] = ()) -> Path:
    """Write the results file atomically (nothing is left behind on failure)."""
    target = check_output(path, overwrite=overwrite, inputs=inputs)
    ds = results_dataset(result)
    with atomic_path(target, overwrite=overwrite) as tmp:
        ds.to_netcdf(tmp, format="NETCDF4", engine="netcdf4")
    return target


__all__ = ["results_dataset", "write_results"]
