"""Reference forecasts a trained model must beat, scored like `svqcast evaluate`.

* persistence: the last input frame for every lead time (also in `svqcast evaluate`;
  recomputed here as a cross-check of the pairing of samples and times);
* the seasonal-naive forecast: the observation one *period* before each target time --
  one day for sub-daily data ("same hour yesterday"), one week for the half-hourly flow
  datasets nyc-taxi / nyc-bike ("same time last week", their strongest cycle). It must be
  known at initialisation, so a lead longer than the period looks back a whole number of
  periods (the most recent same time of day that was observed). It carries the diurnal
  (weekly) cycle that persistence lacks, which makes it the harder baseline for hourly 2 m
  temperature. `svqcast evaluate` reports it next to persistence and climatology
  (:func:`seasonal_reference`, :class:`ObservationRecord`).

Scores: the OpenSTL convention (plain means over pixels, RMSE = sqrt of the global MSE)
and WeatherBench2-style latitude-weighted RMSE/MAE, from `svqcast.verify.metrics`, so the numbers
sit in the same table as the model's `svqcast evaluate` scores.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from svqcast.data import get_split_dataset
from svqcast.data.climatology import WEEKLY_KINDS, target_samples
from svqcast.errors import DataError, UsageError
from svqcast.verify.metrics import OpenSTLScores, spatial_weights
from svqcast.verify.wb2scores import WB2Scores

DAY_SECONDS = 86_400
WEEK_SECONDS = 7 * DAY_SECONDS
#: the seasonal-naive forecast's name in reports, by period
SEASONAL_NAMES = {DAY_SECONDS: "same_hour_yesterday", WEEK_SECONDS: "same_time_last_week"}
#: dataset kinds whose dominant cycle is the week (traffic flows), not the day


def seasonal_period_seconds(spec: Any) -> int | None:
    """The period of the seasonal-naive reference for a dataset, or None where it has none:
    a calendar time axis with sub-daily steps that divide the period (a week for flow data,
    a day otherwise)."""
    step = getattr(spec, "time_step_seconds", None)
    if getattr(spec, "time_kind", None) != "datetime" or not step or step >= DAY_SECONDS:
        return None
    period = WEEK_SECONDS if getattr(spec, "kind", "") in WEEKLY_KINDS else DAY_SECONDS
    return period if float(period / step).is_integer() else None


def seasonal_lags(lead_seconds: list[float], period: int) -> np.ndarray:
    """How far back (ns) each lead looks: one period, or the smallest whole number of
    periods that is at least the lead (the observation then precedes initialisation)."""
    lags = [period * max(1, -(-int(round(s)) // period)) for s in lead_seconds]
    return np.asarray(lags, dtype=np.int64) * 1_000_000_000


class ObservationRecord:
    """The frames of every split of a dataset by valid time, in physical units, read lazily.

    A reference needs observations that may lie in another split (the first test day's
    "yesterday" is in the validation split). The index (time -> sample holding it) is built
    from the splits' time axes only; frames are read one sample at a time, with a small
    cache because consecutive forecasts need overlapping frames.
    """

    def __init__(self, datasets: list[Any], cache: int = 64) -> None:
        self.datasets = datasets
        self.where: dict[int, tuple[int, int, int]] = {}
        self._cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._size = cache
        for k, ds in enumerate(datasets):
            for i in target_samples(len(ds), int(ds.spec.t_out)):
                tin, tout = ds.times(i)
                for pos, t in enumerate(np.concatenate([tin, tout])):
                    self.where.setdefault(int(np.datetime64(t, "ns").astype(np.int64)), (k, i, pos))

    @classmethod
    def for_dataset(cls, name: str, **kwargs: Any) -> ObservationRecord:
        """The record of catalog dataset `name` (kwargs as for `get_split_dataset`)."""

        return cls([get_split_dataset(name, s, **kwargs) for s in ("train", "val", "test")])

    def _sample(self, k: int, i: int) -> np.ndarray:
        key = (k, i)
        if key not in self._cache:
            x, y = self.datasets[k].raw(i)
            self._cache[key] = np.concatenate([np.asarray(x), np.asarray(y)])
            if len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return self._cache[key]

    def frames(self, times_ns: np.ndarray) -> np.ndarray | None:
        """The observed frames at `times_ns` (int64 ns), or None if any was not observed."""
        out = []
        for t in np.asarray(times_ns, dtype=np.int64):
            hit = self.where.get(int(t))
            if hit is None:
                return None
            out.append(self._sample(hit[0], hit[1])[hit[2]])
        return np.stack(out).astype(np.float64)


@dataclass
class SeasonalReference:
    """The seasonal-naive forecast of one dataset: `name`, and `forecast(target_times)`."""

    name: str
    record: ObservationRecord
    lags_ns: np.ndarray  # per lead time

    def forecast(self, target_times: np.ndarray) -> np.ndarray | None:
        """(T_out, C, H, W) physical frames one period (or more) before the targets."""
        t = np.asarray(target_times).astype("datetime64[ns]").astype(np.int64)
        return self.record.frames(t - self.lags_ns)


def seasonal_reference(name: str, spec: Any, **kwargs: Any) -> SeasonalReference | None:
    """The seasonal-naive reference for dataset `name` with split spec `spec`, or None when
    its time axis has no sub-daily calendar steps (kwargs as for `get_split_dataset`)."""
    period = seasonal_period_seconds(spec)
    if period is None:
        return None
    step = float(spec.time_step_seconds)
    lags = seasonal_lags([v * step for v in spec.idx_out], period)
    return SeasonalReference(SEASONAL_NAMES[period], ObservationRecord.for_dataset(name, **kwargs), lags)


def reference_scores(
    name: str = "era5-uk-t2m",
    split: str = "test",
    *,
    t_in: int | None = None,
    t_out: int | None = None,
    root: Any = None,
) -> dict[str, Any]:
    """Scores of persistence and the seasonal-naive forecast on `split` of a calendar
    dataset, without a model (the same numbers `svqcast evaluate` reports for them)."""
    import torch

    ds = get_split_dataset(name, split, t_in=t_in, t_out=t_out, root=root)
    spec = ds.spec
    ref = seasonal_reference(name, spec, t_in=t_in, t_out=t_out, root=root)
    if ref is None:
        raise UsageError(f"{name}: the seasonal-naive reference needs a calendar time axis with sub-daily steps")
    if len(ds) == 0:
        raise DataError(f"{name}/{split}: no samples")
    x0, _ = ds[0]
    weights = spatial_weights(spec.dims, spec.coords, (int(x0.shape[-2]), int(x0.shape[-1])))
    mean = np.asarray(spec.mean, dtype=np.float64).reshape(1, 1, -1, 1, 1)
    std = np.asarray(spec.std, dtype=np.float64).reshape(1, 1, -1, 1, 1)
    names = ("persistence", ref.name)
    openstl = {f: OpenSTLScores(spec.kind, spec.mean, spec.std, spec.clip_range, spec.variables) for f in names}
    wb2 = {f: WB2Scores(weights) for f in names}
    used = skipped = 0
    for i in range(len(ds)):
        x, y = ds[i]
        seasonal = ref.forecast(ds.times(i)[1])
        if seasonal is None:
            skipped += 1
            continue
        y_phys = y[None].double().numpy() * std + mean
        seasonal_n = torch.from_numpy((seasonal[None] - mean) / std)
        persist = x[-1:].expand(y.shape[0], -1, -1, -1)[None]
        for f, fc in (("persistence", persist), (ref.name, seasonal_n)):
            openstl[f].update(fc, y[None])
            wb2[f].update(fc.double().numpy() * std + mean, y_phys)
        used += 1
    if used == 0:
        raise DataError(f"{name}/{split}: no sample has observations one period before its targets")
    out: dict[str, Any] = {"dataset": name, "split": split, "samples": used, "skipped": skipped,
                           "channels": list(spec.channel_names), "units": list(spec.units), "scores": {}}
    for f in names:
        s = wb2[f].compute()
        out["scores"][f] = {
            **openstl[f].compute(),
            "wb2": {m: {c: float(np.mean(s[m][:, j])) for j, c in enumerate(spec.channel_names)}
                    for m in ("rmse", "mae", "bias")},
            "per_lead_time": {m: {c: s[m][:, j].tolist() for j, c in enumerate(spec.channel_names)}
                              for m in ("rmse", "mae")},
        }
    return out
