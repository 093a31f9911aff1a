"""`svqcast evaluate`'s WeatherBench2 regions and bootstrap intervals.

Regions are WeatherBench2's (`svqcast.verify.regions`): one `WB2Scores` per (region, forecast)
with the region's cells as its mask, so each region's weights are renormalised over it.
Intervals resample the evaluated samples (each sample is one initialisation) with the same
percentile bootstrap as `svqcast score`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from svqcast.verify.regions import describe_regions, parse_regions, region_masks
from svqcast.verify.wb2scores import WB2Scores


def region_scores(spec: Any, regions: str | list[str] | None, forecasts: tuple[str, ...], weights: np.ndarray,
                   notes: list[str]) -> dict[str, dict[str, WB2Scores]]:
    """WB2Scores per (region, forecast) for the named WeatherBench2 regions other than global."""
    names = parse_regions(regions)
    if names == ["global"]:
        return {}
    latlon = spec.dims[0] in {"lat", "latitude"}
    lat = np.asarray(spec.coords[spec.dims[0]], dtype=np.float64) if latlon else None
    lon = np.asarray(spec.coords[spec.dims[1]], dtype=np.float64) if latlon else None
    masks, more = region_masks(names, lat, lon, weights.shape, asked=regions not in (None, "all"))
    notes.extend(more)
    return {r: {f: WB2Scores(weights, region=m) for f in forecasts} for r, m in masks.items() if r != "global"}


def _by_channel(values: np.ndarray, channels: list[str], per_lead: bool) -> dict[str, Any]:
    """(T, C) -> {channel: mean over leads} or {channel: [per lead]}; NaN -> None later."""
    if per_lead:
        return {c: values[:, j].tolist() for j, c in enumerate(channels)}
    with np.errstate(invalid="ignore"):
        return {c: float(np.nanmean(values[:, j])) if np.isfinite(values[:, j]).any() else None
                for j, c in enumerate(channels)}


def add_intervals_and_regions(result: dict[str, Any], sc: Any, channels: list[str], per_lead: bool) -> None:
    """Bootstrap intervals over samples beside the WB2 scores, and the WB2 scores per region."""
    if sc.boot is not None:
        result["confidence"] = {**sc.boot.describe(), "method": "percentile bootstrap over samples (initialisations)"}
        for f in result["scores"]:
            ci = sc.wb2[f].intervals(sc.boot.resamples, sc.boot.level, sc.boot.seed)
            result["scores"][f]["wb2_ci"] = {m: {c: over[:, j].tolist() for j, c in enumerate(channels)}
                                             for m, (_, over) in ci.items()}
            if per_lead:
                result.setdefault("per_lead_time_ci", {})[f] = {
                    m: {c: per[:, :, j].T.tolist() for j, c in enumerate(channels)} for m, (per, _) in ci.items()}
    if sc.regions:
        result["regions"] = {
            r: {f: {m: _by_channel(a, channels, per_lead) for m, a in per_f[f].compute().items()}
                for f in result["scores"]} for r, per_f in sc.regions.items()}
        result["region_bounds"] = describe_regions(list(sc.regions))


__all__ = ["add_intervals_and_regions", "region_scores"]
