"""Reference forecasts a trained weather model must beat, scored like `svqcast evaluate`.

* persistence: the last input frame for every lead time (also in `svqcast evaluate`;
  recomputed here as a cross-check of the pairing of samples and times);
* same hour yesterday: the observation 24 h before each target time. For leads up to
  24 h that observation is known at initialisation, so it is a fair forecast; it carries
  the diurnal cycle that persistence lacks, which makes it the harder baseline for hourly
  2 m temperature.

Scores: the OpenSTL convention (plain means over pixels, RMSE = sqrt of the global MSE)
and WeatherBench2-style latitude-weighted RMSE/MAE, from `svqcast.metrics`, so the numbers
sit in the same table as the model's `svqcast evaluate` scores.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from svqcast.errors import DataError, UsageError

DAY_SECONDS = 86_400


def _frames_by_time(name: str, t_in: int | None, t_out: int | None, root: Any) -> dict[int, np.ndarray]:
    """Every (normalised) frame of every split, keyed by time in ns: the observation record."""
    from svqcast.data import get_split_dataset

    frames: dict[int, np.ndarray] = {}
    for split in ("train", "val", "test"):
        ds = get_split_dataset(name, split, t_in=t_in, t_out=t_out, root=root)
        for i in range(len(ds)):
            x, y = ds[i]
            tin, tout = ds.times(i)
            for frame, t in zip(np.concatenate([x.numpy(), y.numpy()]), np.concatenate([tin, tout])):
                frames.setdefault(int(np.datetime64(t, "ns").astype(np.int64)), frame)
    return frames


def reference_scores(
    name: str = "era5-uk-t2m",
    split: str = "test",
    *,
    t_in: int | None = None,
    t_out: int | None = None,
    root: Any = None,
) -> dict[str, Any]:
    """Scores of persistence and same-hour-yesterday on `split` of a calendar dataset."""
    import torch

    from svqcast.data import get_split_dataset
    from svqcast.metrics import OpenSTLScores, WB2Scores, spatial_weights

    ds = get_split_dataset(name, split, t_in=t_in, t_out=t_out, root=root)
    spec = ds.spec
    if spec.time_kind != "datetime" or not spec.time_step_seconds:
        raise UsageError(f"{name}: same-hour-yesterday needs a calendar time axis")
    if len(ds) == 0:
        raise DataError(f"{name}/{split}: no samples")
    if max(spec.idx_out) * spec.time_step_seconds > DAY_SECONDS:
        raise UsageError(f"{name}: leads beyond 24 h; yesterday's observation is not known at initialisation")
    record = _frames_by_time(name, t_in, t_out, root)
    day = np.timedelta64(DAY_SECONDS, "s").astype("timedelta64[ns]")
    x0, _ = ds[0]
    weights = spatial_weights(spec.dims, spec.coords, tuple(x0.shape[-2:]))
    mean = np.asarray(spec.mean, dtype=np.float64).reshape(1, 1, -1, 1, 1)
    std = np.asarray(spec.std, dtype=np.float64).reshape(1, 1, -1, 1, 1)
    names = ("persistence", "same_hour_yesterday")
    openstl = {f: OpenSTLScores(spec.kind, spec.mean, spec.std, spec.clip_range, spec.variables) for f in names}
    wb2 = {f: WB2Scores(weights) for f in names}
    used = skipped = 0
    for i in range(len(ds)):
        x, y = ds[i]
        _, tout = ds.times(i)
        keys = [int((np.datetime64(t, "ns") - day).astype(np.int64)) for t in tout]
        if any(k not in record for k in keys):
            skipped += 1
            continue
        yday = torch.from_numpy(np.stack([record[k] for k in keys]))[None]
        persist = x[-1:].expand(y.shape[0], -1, -1, -1)[None]
        truth = y[None]
        y_phys = truth.double().numpy() * std + mean
        for f, fc in (("persistence", persist), ("same_hour_yesterday", yday)):
            openstl[f].update(fc, truth)
            wb2[f].update(fc.double().numpy() * std + mean, y_phys)
        used += 1
    if used == 0:
        raise DataError(f"{name}/{split}: no sample has observations 24 h before its targets")
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
