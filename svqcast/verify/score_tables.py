"""The per-lead and overall tables of `svqcast score`, with bootstrap intervals.

Scoring fills `Sums`: one weighted spatial mean per (region, initialisation, lead) and score.
The tables reduce them the WeatherBench2 way (RMSE is the root of the mean over
initialisations of the mean squared error; MAE, bias and ACC are plain means) and put a
percentile-bootstrap interval over initialisations beside each number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from svqcast.sources.forecast_files import ForecastView
from svqcast.sources.timeaxis import iso_duration
from svqcast.verify.metrics import bootstrap_interval, root_mean

SCORES = ("rmse", "mae", "bias", "acc")
_RENAMED = {"mse_frame": "mse", "mae_frame": "mae_openstl"}


@dataclass
class Bootstrap:
    """How intervals are computed: stated in every report."""

    resamples: int = 1000
    level: float = 0.95
    seed: int = 0

    def describe(self) -> dict[str, Any]:
        return {"method": "percentile bootstrap over initialisations", "level": self.level,
                "resamples": self.resamples, "seed": self.seed}


@dataclass
class Sums:
    """Per (region, init, lead) weighted spatial means; NaN where not scored. `extra` holds the
    OpenSTL frame metrics of frame data, per (init, lead), on the whole grid."""

    mse: np.ndarray
    mae: np.ndarray
    bias: np.ndarray
    acc: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def empty(cls, shape: tuple[int, int, int]) -> Sums:
        return cls(np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan))

    def of(self, score: str) -> np.ndarray:
        return {"rmse": self.mse, "mae": self.mae, "bias": self.bias, "acc": self.acc}[score]


def _aggregate(values: np.ndarray, sqrt: bool = False) -> float | None:
    ok = values[np.isfinite(values)]
    if ok.size == 0:
        return None
    m = float(ok.mean())
    return float(np.sqrt(m)) if sqrt else m


def interval(values: np.ndarray, score: str, boot: Bootstrap) -> np.ndarray:
    """(2, ...) bounds of `score` from per-init values (n, ...)."""
    reduce = root_mean if score == "rmse" else np.nanmean
    lo, hi = bootstrap_interval(values, reduce, resamples=boot.resamples, level=boot.level, seed=boot.seed)
    return np.stack([lo, hi])


def _bounds(pair: np.ndarray) -> list[float] | None:
    return [float(pair[0]), float(pair[1])] if np.all(np.isfinite(pair)) else None


def region_table(sums: Sums, r: int, fv: ForecastView, with_acc: bool, boot: Bootstrap | None,
                 with_extra: bool) -> dict[str, Any]:
    """`per_lead` rows and the `overall` row of one region of one (field, forecast) pair."""
    scores = [s for s in SCORES if s != "acc" or with_acc]
    per_init = {s: sums.of(s)[r] for s in scores}
    ci = {s: interval(per_init[s], s, boot) for s in scores} if boot else {}
    # overall: each initialisation's mean over its scored leads, then the same reduction
    means = {s: _nanmean_rows(per_init[s]) for s in scores}
    ci_all = {s: interval(means[s][:, None], s, boot)[:, 0] for s in scores} if boot else {}
    labels = fv.lead_labels()
    per_lead = []
    for j, secs in enumerate(fv.lead_seconds()):
        row: dict[str, Any] = {"lead_time_seconds": secs, "lead_time": iso_duration(secs) if secs is not None else None,
                               "lead": labels[j]}
        if secs is None:
            row["lead_steps"] = int(fv.leads[j])
        row.update({s: _aggregate(per_init[s][:, j], sqrt=s == "rmse") for s in scores})
        if with_extra:
            row.update(_extra_row(sums, (slice(None), j)))
        row["n"] = int(np.isfinite(per_init["rmse"][:, j]).sum())
        if boot:
            row["ci"] = {s: _bounds(ci[s][:, j]) for s in scores}
        per_lead.append(row)
    overall: dict[str, Any] = {s: _aggregate(per_init[s], sqrt=s == "rmse") for s in scores}
    if with_extra:
        overall.update(_extra_row(sums, (slice(None), slice(None))))
    overall["n"] = int(np.isfinite(per_init["rmse"]).any(axis=1).sum())
    overall["n_forecasts"] = int(np.isfinite(per_init["rmse"]).sum())
    if boot:
        overall["ci"] = {s: _bounds(ci_all[s]) for s in scores}
    return {"per_lead": per_lead, "overall": overall}


def _nanmean_rows(values: np.ndarray) -> np.ndarray:
    out = np.full(values.shape[0], np.nan)
    ok = np.isfinite(values).any(axis=1)
    out[ok] = np.nanmean(values[ok], axis=1)
    return out


def _extra_row(sums: Sums, sel: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, arr in sums.extra.items():
        value = _aggregate(arr[sel])
        if value is not None:
            out[_RENAMED.get(key, key)] = value
    return out


def field_tables(sums: Sums, regions: list[str], fv: ForecastView, with_acc: bool,
                 boot: Bootstrap | None) -> dict[str, Any]:
    """The first region's table at the top (what the CLI prints), every region under `regions`."""
    tables = {name: region_table(sums, r, fv, with_acc, boot, with_extra=r == 0) for r, name in enumerate(regions)}
    return {**tables[regions[0]], "regions": tables}


__all__ = ["SCORES", "Bootstrap", "Sums", "field_tables", "interval", "region_table"]
