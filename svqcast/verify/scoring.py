"""`svqcast score`: a forecast file against observations, matched by valid time.

For every variable and lead time, over all initialisations whose valid time the truth covers:

* ``rmse`` = sqrt(mean over initialisations of the latitude-weighted spatial mean of the
  squared error), ``mae`` and ``bias`` the same means of ``|f - o|`` and ``f - o``, and with a
  climatology ``acc``, the mean of the per-field uncentred anomaly correlation. These are
  WeatherBench2's definitions (RMSE: square root *after* the time mean); the weights are the
  cell areas of `svqcast.verify.metrics.lat_weights` (docs/evaluation.md says how they differ from
  WeatherBench2's on regional grids).
* ``overall``: the same means over every scored (initialisation, lead) pair.
* ``references.persistence``: the truth at the initialisation time used as the forecast for
  every lead, scored on the same pairs (those whose initialisation the truth also covers).
* frame data (no calendar): the OpenSTL image metrics (per-frame MSE/MAE, and SSIM/PSNR when
  the frames are images in [0, 1]) beside the unweighted errors.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from svqcast.errors import DataError
from svqcast.forecast.inputs import squeeze_extra
from svqcast.progress import Progress, counted
from svqcast.sources.cf import mask_invalid
from svqcast.sources.coords import apply_coords, check_found
from svqcast.sources.forecast_files import ForecastView, open_forecast
from svqcast.sources.grid import spatial_selection, time_dims
from svqcast.sources.lexicon import resolve_variables
from svqcast.sources.opener import open_dataset
from svqcast.sources.timeaxis import iso_duration, time_axis_of
from svqcast.units import convert_units, implausible, is_physical
from svqcast.verify.metrics import anomaly_correlation, error_means, lat_weights, psnr_frames, ssim_frames


@dataclass
class _Truth:
    """One truth variable cut to the forecast grid, with a time -> index lookup."""

    da: Any
    tdim: str
    isel: dict[str, Any]
    dims: tuple[str, str]
    pos: dict[int, int]
    units: str | None
    name: str

    def frames(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(values (n_found, H, W) float64, mask of `times` found)."""
        keys = times.astype("datetime64[ns]").astype(np.int64) if times.dtype.kind == "M" else times.astype(np.int64)
        idx = np.array([self.pos.get(int(k), -1) for k in keys])
        mask = idx >= 0
        if not mask.any():
            return np.empty((0,)), mask
        import xarray as xr

        sub = self.da.isel({self.tdim: xr.DataArray(idx[mask], dims="_t"), **self.isel})
        return mask_invalid(np.asarray(sub.transpose("_t", *self.dims).values, dtype=np.float64), self.da), mask


@dataclass
class _Sums:
    """Per (init, lead) weighted spatial means; NaN where not scored."""

    mse: np.ndarray
    mae: np.ndarray
    bias: np.ndarray
    acc: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def empty(cls, shape: tuple[int, int]) -> _Sums:
        return cls(np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan))


def _grid(fv: ForecastView) -> tuple[list[str], dict[str, Any]]:
    """The forecast's grid as (dims, coords): what truth and climatology are cut to."""
    dims = ["lat", "lon"] if fv.latlon else ["y", "x"]
    return dims, {dims[0]: fv.y.tolist(), dims[1]: fv.x.tolist()}


def _open_truth(tds: Any, var: str, fv: ForecastView, src: str, notes: list[str]) -> _Truth:
    name = resolve_variables(tds, [var], {}, src)[var]
    da = tds[name]
    tdims = time_dims(da)
    if not tdims:
        raise DataError(f"{src}: variable '{name}' has no time dimension; truth must cover the valid times")
    isel, dims = spatial_selection(tds, da, *_grid(fv), src, notes, target="forecast")
    da = squeeze_extra(da, (tdims[0], *dims), name, src)
    axis = time_axis_of(da, tdims[0], source=src, allow_frames=not fv.calendar)
    notes.extend(axis.notes)
    if axis.is_datetime != fv.calendar:
        raise DataError(f"{src}: the truth's time axis is {'dates' if axis.is_datetime else 'frames'}, "
                        f"the forecast's is {'dates' if fv.calendar else 'frames'}; they cannot be matched")
    keys = axis.values.astype(np.int64)
    pos = {int(k): i for i, k in enumerate(keys)}
    units = da.attrs.get("units")
    return _Truth(da, tdims[0], isel, dims, pos, None if units is None else str(units), name)


def area_weights(fv: ForecastView) -> np.ndarray:
    """(H, W) weights of the forecast grid, mean 1: latitude cell areas (WeatherBench2) or uniform."""
    h, w = fv.y.size, fv.x.size
    if fv.latlon:
        return np.repeat(lat_weights(fv.y.astype(np.float64).tolist())[:, None], w, axis=1)
    return np.ones((h, w))


def _fill(sums: _Sums, i: int, leads: np.ndarray, f: np.ndarray, o: np.ndarray, w: np.ndarray,
          clim: np.ndarray | None) -> None:
    sums.mse[i, leads], sums.mae[i, leads], sums.bias[i, leads] = error_means(f, o, w)
    if clim is not None:
        acc, ok = anomaly_correlation(f, o, clim, w)
        sums.acc[i, leads] = np.where(ok, acc, np.nan)


def _image_metrics(sums: _Sums, i: int, leads: np.ndarray, f: np.ndarray, o: np.ndarray) -> None:
    """OpenSTL's per-frame metrics for frame data: sums over the frame, SSIM/PSNR on [0, 1]."""

    for key in ("mse_frame", "mae_frame", "ssim", "psnr"):
        sums.extra.setdefault(key, np.full(sums.mse.shape, np.nan))
    err = f - o
    sums.extra["mse_frame"][i, leads] = (err * err).sum(axis=(-2, -1))
    sums.extra["mae_frame"][i, leads] = np.abs(err).sum(axis=(-2, -1))
    if f.shape[-1] >= 7 and f.shape[-2] >= 7 and o.min() >= 0.0 and o.max() <= 1.0:
        pc = np.clip(f, 0.0, 1.0)[:, None]
        sums.extra["ssim"][i, leads] = ssim_frames(pc, o[:, None])
        sums.extra["psnr"][i, leads] = psnr_frames(pc, o[:, None])


def _aggregate(values: np.ndarray, sqrt: bool = False) -> float | None:
    ok = values[np.isfinite(values)]
    if ok.size == 0:
        return None
    m = float(ok.mean())
    return float(np.sqrt(m)) if sqrt else m


def _row(sums: _Sums, sel: Any, with_acc: bool) -> dict[str, Any]:
    mse = sums.mse[sel]
    row: dict[str, Any] = {
        "rmse": _aggregate(mse, sqrt=True), "mae": _aggregate(sums.mae[sel]), "bias": _aggregate(sums.bias[sel]),
    }
    if with_acc:
        row["acc"] = _aggregate(sums.acc[sel])
    for key, arr in sums.extra.items():
        value = _aggregate(arr[sel])
        if value is not None:
            row[{"mse_frame": "mse", "mae_frame": "mae_openstl"}.get(key, key)] = value
    return row


def _table(sums: _Sums, fv: ForecastView, with_acc: bool) -> dict[str, Any]:
    """`per_lead` rows and the `overall` row of one (variable, forecast) pair."""
    per_lead = []
    labels = fv.lead_labels()
    for j, secs in enumerate(fv.lead_seconds()):
        row: dict[str, Any] = {"lead_time_seconds": secs, "lead_time": iso_duration(secs) if secs is not None else None,
                               "lead": labels[j]}
        if secs is None:
            row["lead_steps"] = int(fv.leads[j])
        row.update(_row(sums, (slice(None), j), with_acc))
        row["n"] = int(np.isfinite(sums.mse[:, j]).sum())
        per_lead.append(row)
    overall = _row(sums, (slice(None), slice(None)), with_acc)
    overall["n"] = int(np.isfinite(sums.mse).any(axis=1).sum())
    overall["n_forecasts"] = int(np.isfinite(sums.mse).sum())
    return {"per_lead": per_lead, "overall": overall}


@dataclass
class _Clim:
    """A climatology on the forecast grid: WeatherBench2-style (dayofyear, hour), by valid time,
    or one static field."""

    da: Any
    kind: str  # "dayofyear" | "time" | "static"
    isel: dict[str, Any]
    dims: tuple[str, str]
    pos: dict[int, int]
    src: str
    units: str | None = None

    def at(self, valid: np.ndarray) -> np.ndarray:
        import pandas as pd
        import xarray as xr

        sub = self.da.isel(self.isel)
        if self.kind == "static":
            field_ = np.asarray(sub.transpose(*self.dims).values, dtype=np.float64)
            return np.broadcast_to(field_, (valid.size, *field_.shape))
        if self.kind == "time":
            idx = [self.pos.get(int(k), -1) for k in valid.astype("datetime64[ns]").astype(np.int64)]
            if min(idx) < 0:
                missing = valid[int(np.argmin(idx))]
                raise DataError(f"{self.src}: the climatology has no field for {str(missing)[:19]}")
            picked = sub.isel({_time_dim(sub): xr.DataArray(idx, dims="_t")})
        else:
            stamps = pd.DatetimeIndex(valid)
            keys = {"dayofyear": xr.DataArray(stamps.dayofyear.values, dims="_t")}
            if "hour" in sub.dims:
                keys["hour"] = xr.DataArray(stamps.hour.values, dims="_t")
            try:
                picked = sub.sel(keys)
            except KeyError:
                raise DataError(f"{self.src}: the climatology lacks a day of year or hour of the valid times "
                                f"({str(valid[0])[:16]} ..)") from None
        return np.asarray(picked.transpose("_t", *self.dims).values, dtype=np.float64)


def _time_dim(da: Any) -> str:
    return str(time_dims(da)[0])


def _open_clim(cds: Any, var: str, fv: ForecastView, src: str, notes: list[str]) -> _Clim:
    name = resolve_variables(cds, [var], {}, src)[var]
    da = cds[name]
    isel, dims = spatial_selection(cds, da, *_grid(fv), src, notes, target="forecast")
    extra = [d for d in da.dims if d not in (*dims, "dayofyear", "hour") and d not in time_dims(da)]
    da = da.isel({d: 0 for d in extra if da.sizes[d] == 1})
    units = None if da.attrs.get("units") is None else str(da.attrs["units"])
    if "dayofyear" in da.dims:
        return _Clim(da, "dayofyear", isel, dims, {}, src, units)
    if time_dims(da):
        axis = time_axis_of(da, _time_dim(da), source=src)
        pos = {int(k): i for i, k in enumerate(axis.values.astype(np.int64))}
        return _Clim(da, "time", isel, dims, pos, src, units)
    return _Clim(da, "static", isel, dims, {}, src, units)


def _in_units(values: np.ndarray, src_units: str | None, dst: str | None, name: str, notes: list[str],
              what: str = "truth") -> np.ndarray:
    """`values` of the truth (or climatology) in the forecast's units, converted where that is
    unambiguous; missing units where the forecast has them, and implausible values, are refused."""
    if dst is None:
        return values
    if src_units is None and is_physical(dst):
        raise DataError(f"the {what} of '{name}' has no units attribute while the forecast is in {dst}; "
                        "set the units of the file (svqcast never guesses them)")
    if src_units is None:
        return values
    out, note = convert_units(values, src_units, dst, name)
    if note:
        notes.append(note)
    if (why := implausible(out, dst)) is not None:
        raise DataError(f"the {what} of '{name}' {why} after conversion from '{src_units}' to {dst}; "
                        "check its units attribute")
    return np.asarray(out, dtype=np.float64)


@dataclass
class _Run:
    """State of scoring one variable."""

    fv: ForecastView
    var: str
    truth: _Truth
    clim: _Clim | None
    w: np.ndarray
    notes: list[str]
    model: _Sums
    pers: _Sums
    missing: set[int] = field(default_factory=set)
    missing_pairs: int = 0

    def observe(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        obs, mask = self.truth.frames(times)
        if mask.any():
            obs = _in_units(obs, self.truth.units, self.fv.units(self.var), self.truth.name, self.notes)
            finite = np.isfinite(obs).all(axis=(-2, -1))
            obs = obs[finite]
            mask[np.flatnonzero(mask)[~finite]] = False
        return obs, mask

    def score_init(self, i: int) -> None:
        t0 = self.fv.inits[i]
        valid = self.fv.valid_times(i)
        obs, mask = self.observe(valid)
        self.missing.update(int(k) for k in valid[~mask].astype(np.int64))
        self.missing_pairs += int((~mask).sum())
        if not mask.any():
            return
        leads = np.flatnonzero(mask)
        f = np.asarray(self.fv.data[self.var][i].values, dtype=np.float64)[leads]
        if not np.isfinite(f).all():
            raise DataError(f"{self.fv.source}: '{self.var}' has missing (NaN) values at initialisation "
                            f"{str(t0)[:19]}; svqcast scores complete fields only")
        if (why := implausible(f, self.fv.units(self.var))) is not None:
            raise DataError(f"{self.fv.source}: the forecast of '{self.var}' {why}; check its units attribute")
        clim = None if self.clim is None else _in_units(self.clim.at(valid[leads]), self.clim.units,
                                                        self.fv.units(self.var), self.var, self.notes, "climatology")
        _fill(self.model, i, leads, f, obs, self.w, clim)
        p0, pmask = self.observe(np.array([t0]))
        if pmask[0]:
            _fill(self.pers, i, leads, np.broadcast_to(p0[0], obs.shape), obs, self.w, clim)
        if not self.fv.calendar:
            _image_metrics(self.model, i, leads, f, obs)
            if pmask[0]:
                _image_metrics(self.pers, i, leads, np.broadcast_to(p0[0], obs.shape).copy(), obs)


def _missing_note(run: _Run) -> str | None:
    if not run.missing:
        return None
    first = min(run.missing)
    shown = str(np.int64(first).astype("datetime64[ns]"))[:19] if run.fv.calendar else str(first)
    return (f"{run.var}: {len(run.missing)} valid times ({run.missing_pairs} forecasts) are not in the truth or "
            f"hold NaNs there (first: {shown}); they are not scored")


def _score_variable(fv: ForecastView, var: str, tds: Any, cds: Any, srcs: tuple[str, str], notes: list[str],
                    tick: Callable[[int], None], offset: int) -> dict[str, Any]:
    truth = _open_truth(tds, var, fv, srcs[0], notes)
    clim = _open_clim(cds, var, fv, srcs[1], notes) if cds is not None else None
    shape = (fv.inits.size, fv.leads.size)
    run = _Run(fv, var, truth, clim, area_weights(fv), notes, _Sums.empty(shape), _Sums.empty(shape))
    for i in range(fv.inits.size):
        run.score_init(i)
        tick(offset + i + 1)
    if not np.isfinite(run.model.mse).any():
        raise DataError(
            f"{srcs[0]}: covers none of the forecast's valid times for '{var}' "
            f"({_span(fv)}); give observations for those times"
        )
    note = _missing_note(run)
    if note:
        notes.append(note)
    with_acc = clim is not None
    return {
        "units": fv.units(var),
        "truth_variable": truth.name,
        **_table(run.model, fv, with_acc),
        "missing_valid_times": len(run.missing),
        "missing_forecasts": run.missing_pairs,
        "references": {"persistence": _table(run.pers, fv, with_acc)},
    }


def _span(fv: ForecastView) -> str:
    valid = np.concatenate([fv.valid_times(i) for i in range(fv.inits.size)])
    first, last = valid.min(), valid.max()
    return f"{str(first)[:16]} .. {str(last)[:16]}" if fv.calendar else f"frames {first} .. {last}"


def score_forecast(
    forecast: str | os.PathLike[str] | Any,
    truth: str | os.PathLike[str] | Any,
    *,
    climatology: str | os.PathLike[str] | Any = None,
    variables: Sequence[str] | None = None,
    progress: Progress | None = None,
    coords: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Score `forecast` (any supported layout) against `truth` over all initialisations.

    Returns a JSON-ready dict: ``variables`` -> {``per_lead``, ``overall``,
    ``references.persistence``, missing counts}, plus ``notes`` on everything adapted.
    `progress` counts (variable, initialisation) pairs.
    """
    import xarray as xr

    coords = coords or {}
    fv = open_forecast(forecast, variables, coords, strict=False)
    tds = apply_coords(truth, coords, "truth", strict=False) if isinstance(truth, xr.Dataset) else open_dataset(
        truth, coords, strict=False)
    cds = None if climatology is None else (
        climatology if isinstance(climatology, xr.Dataset) else open_dataset(climatology, coords, strict=False))
    check_found(coords, [fv.handle, tds, cds], "forecast, truth and climatology files")
    srcs = (str(truth) if not isinstance(truth, xr.Dataset) else "truth dataset",
            str(climatology) if climatology is not None and not isinstance(climatology, xr.Dataset) else "climatology")
    notes = list(fv.notes)
    total = len(fv.data) * fv.inits.size
    tick = counted(progress, "score", total, "scoring initialisations")
    results = {var: _score_variable(fv, var, tds, cds, srcs, notes, tick, k * fv.inits.size)
               for k, var in enumerate(fv.data)}
    return {
        "forecast": fv.source,
        "truth": srcs[0],
        "climatology": None if climatology is None else srcs[1],
        "layout": fv.layout,
        "init_times": fv.inits.size,
        "first_init": str(fv.inits.min())[:19],
        "last_init": str(fv.inits.max())[:19],
        "weights": "latitude cell areas" if fv.latlon else "uniform",
        "variables": results,
        "notes": list(dict.fromkeys(notes)),
    }


def init_scores(fv: ForecastView, var: str, truth: Any, init_index: int, notes: list[str],
                coords: Mapping[str, str] | None = None) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """One initialisation of `fv` against `truth`, through the same code as `score_forecast`.

    Returns the truth on the forecast grid (L, H, W) in the forecast's units (NaN where a lead
    has no truth), the mask of leads with truth, and the per-lead rows (rmse, mae, bias) that
    `svqcast score` reports for a file holding only this initialisation.
    """
    import xarray as xr

    src = str(truth) if not isinstance(truth, xr.Dataset) else "truth dataset"
    tds = truth if isinstance(truth, xr.Dataset) else open_dataset(truth, coords, strict=False)
    check_found(coords or {}, [fv.handle, tds], "forecast and truth files")
    shape = (fv.inits.size, fv.leads.size)
    run = _Run(fv, var, _open_truth(tds, var, fv, src, notes), None, area_weights(fv), notes,
               _Sums.empty(shape), _Sums.empty(shape))
    obs, mask = run.observe(fv.valid_times(init_index))
    frames = np.full((fv.leads.size, fv.y.size, fv.x.size), np.nan)
    frames[mask] = obs
    run.score_init(init_index)
    rows = [_row(run.model, (init_index, k), with_acc=False) for k in range(fv.leads.size)]
    return frames, mask, rows
