"""`svqcast score`: a forecast file against observations, matched by valid time.

For every field (a variable, or one level of a variable with levels: ``geopotential@500``),
region and lead time, over all initialisations whose valid time the truth covers:

* ``rmse`` = sqrt(mean over initialisations of the latitude-weighted spatial mean of the
  squared error), ``mae`` and ``bias`` the same means of ``|f - o|`` and ``f - o``, and with a
  climatology ``acc``, the mean of the per-field uncentred anomaly correlation. These are
  WeatherBench2's definitions (RMSE: square root *after* the time mean); the weights are the
  cell areas of `svqcast.verify.metrics.lat_weights`, renormalised over the region's cells
  that are valid (finite in forecast and truth: land in a sea-surface field is not scored).
* ``ci``: a percentile-bootstrap interval over initialisations beside every number.
* derived fields when both wind components are forecast: wind speed, and the wind-vector
  RMSE (root of the mean squared length of the vector error).
* ``overall``: the same means over every scored (initialisation, lead) pair.
* ``references.persistence``: the truth at the initialisation time used as the forecast for
  every lead, scored on the same pairs (those whose initialisation the truth also covers).
* frame data (no calendar): the OpenSTL image metrics (per-frame MSE/MAE, and SSIM/PSNR when
  the frames are images in [0, 1]) beside the unweighted errors.

No variable is dropped silently: one that cannot be scored is named in ``not_scored`` with
the reason.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from svqcast.errors import DataError, UsageError
from svqcast.progress import Progress, counted
from svqcast.sources.coords import apply_coords, check_found
from svqcast.sources.forecast_files import ForecastView, open_forecast
from svqcast.sources.opener import open_dataset
from svqcast.units import implausible
from svqcast.verify.derived import Field, derived_fields, field_errors
from svqcast.verify.ensemble_scores import EnsembleSums, add_probabilistic
from svqcast.verify.events import DEFAULT_SCALES, EventScores, parse_scales, parse_thresholds
from svqcast.verify.metrics import anomaly_correlation, lat_weights, psnr_frames, ssim_frames, weighted_mean
from svqcast.verify.regions import describe_regions, parse_regions, region_masks
from svqcast.verify.score_tables import Bootstrap, Sums, field_tables
from svqcast.verify.truthfiles import open_climatology, open_truth


def area_weights(fv: ForecastView) -> np.ndarray:
    """(H, W) weights of the forecast grid, mean 1: latitude cell areas (WeatherBench2) or uniform."""
    h, w = fv.y.size, fv.x.size
    if fv.latlon:
        return np.repeat(lat_weights(fv.y.astype(np.float64).tolist())[:, None], w, axis=1)
    return np.ones((h, w))


def _image_metrics(sums: Sums, i: int, leads: np.ndarray, f: np.ndarray, o: np.ndarray) -> None:
    """OpenSTL's per-frame metrics for frame data: sums over the frame, SSIM/PSNR on [0, 1]."""
    if not (np.isfinite(f).all() and np.isfinite(o).all()):
        return
    for key in ("mse_frame", "mae_frame", "ssim", "psnr"):
        sums.extra.setdefault(key, np.full(sums.mse.shape[1:], np.nan))
    err = f - o
    sums.extra["mse_frame"][i, leads] = (err * err).sum(axis=(-2, -1))
    sums.extra["mae_frame"][i, leads] = np.abs(err).sum(axis=(-2, -1))
    if f.shape[-1] >= 7 and f.shape[-2] >= 7 and o.min() >= 0.0 and o.max() <= 1.0:
        pc = np.clip(f, 0.0, 1.0)[:, None]
        sums.extra["ssim"][i, leads] = ssim_frames(pc, o[:, None])
        sums.extra["psnr"][i, leads] = psnr_frames(pc, o[:, None])


@dataclass
class _Run:
    """State of scoring one field over every region."""

    fv: ForecastView
    fld: Field
    masks: list[np.ndarray]  # per region (H, W)
    w: np.ndarray
    notes: list[str]
    model: Sums
    pers: Sums
    missing: set[int] = field(default_factory=set)
    missing_pairs: int = 0
    ever_valid: np.ndarray | None = None
    events: dict[str, EventScores] = field(default_factory=dict)  # "model", "persistence"
    ens: EnsembleSums | None = None  # probabilistic scores of an ensemble field

    def fill(self, sums: Sums, i: int, leads: np.ndarray, f: np.ndarray, o: np.ndarray,
             clim: np.ndarray | None, track: bool = False) -> None:
        sq, ab, bi, valid = field_errors(f, o, self.fld.kind)
        if track:
            seen = np.asarray(valid.any(axis=0), dtype=bool)
            self.ever_valid = seen if self.ever_valid is None else self.ever_valid | seen
        for r, mask in enumerate(self.masks):
            ok = valid & mask
            sums.mse[r, i, leads] = weighted_mean(sq, self.w, ok)
            sums.mae[r, i, leads] = weighted_mean(ab, self.w, ok)
            sums.bias[r, i, leads] = weighted_mean(bi, self.w, ok)
            if clim is not None:
                acc, defined = anomaly_correlation(f, o, clim, self.w, ok)
                sums.acc[r, i, leads] = np.where(defined, acc, np.nan)

    def score_init(self, i: int) -> None:
        t0 = self.fv.inits[i]
        valid = self.fv.valid_times(i)
        obs, mask = self.fld.observe(valid, self.notes)
        self.missing.update(int(k) for k in valid[~mask].astype(np.int64))
        self.missing_pairs += int((~mask).sum())
        if not mask.any():
            return
        leads = np.flatnonzero(mask)
        f = self.fld.forecast(self.fv, i, leads)
        members = None
        if self.fld.kind == "scalar" and f.ndim == 4:  # an ensemble (L', M, H, W): scores of its mean
            members = np.moveaxis(f, 1, 0)
            f = members.mean(axis=0)
        if (why := implausible(f, self.fld.units)) is not None:
            raise DataError(f"{self.fv.source}: the forecast of '{self.fld.key}' {why}; check its units attribute")
        clim = self.fld.climate(valid[leads], self.notes)
        self.fill(self.model, i, leads, f, obs, clim, track=True)
        if members is not None and self.ens is not None:
            self.ens.add(i, leads, members, obs, self.w, self.masks)
        p0, pmask = self.fld.observe(np.array([t0]), self.notes)
        persisted = np.broadcast_to(p0[..., :1, :, :], obs.shape) if pmask[0] else None
        if persisted is not None:
            self.fill(self.pers, i, leads, persisted, obs, clim)
        if self.events:
            self.events["model"].add(leads, f, obs)
            if persisted is not None:
                self.events["persistence"].add(leads, persisted, obs)
        if not self.fv.calendar and self.fld.kind == "scalar":
            _image_metrics(self.model, i, leads, f, obs)
            if persisted is not None:
                _image_metrics(self.pers, i, leads, persisted.copy(), obs)


def _missing_note(run: _Run) -> str | None:
    if not run.missing:
        return None
    first = min(run.missing)
    shown = str(np.int64(first).astype("datetime64[ns]"))[:19] if run.fv.calendar else str(first)
    return (f"{run.fld.key}: {len(run.missing)} valid times ({run.missing_pairs} forecasts) are not in the truth "
            f"or hold no valid cell there (first: {shown}); they are not scored")


@dataclass
class _Setup:
    """What every field is scored with."""

    fv: ForecastView
    regions: list[str]
    masks: list[np.ndarray]
    boot: Bootstrap | None
    notes: list[str]
    tick: Callable[[int], None]
    thresholds: str | Sequence[str] | None = None
    scales: list[int] = field(default_factory=list)
    seed: int = 0

    def event_scores(self, fld: Field) -> dict[str, EventScores]:
        """Categorical and FSS accumulators of a field, when thresholds were asked for."""
        if self.thresholds is None or fld.kind != "scalar":
            return {}
        step = self.fv.lead_seconds()[0]
        thresholds = parse_thresholds(self.thresholds, fld.units, step, f"'{fld.key}'")
        shape = (self.fv.y.size, self.fv.x.size)
        made = {k: EventScores(thresholds, self.scales, 1, self.fv.leads.size, shape) for k in ("model", "persistence")}
        if made["model"].dropped:
            self.notes.append(f"FSS scales {made['model'].dropped} exceed the {shape[0]}x{shape[1]} grid: not scored")
        return made

    def ensemble_sums(self, fld: Field, shape: tuple[int, int, int]) -> EnsembleSums | None:
        members = self.fv.members(fld.parts[0]) if fld.kind == "scalar" else 0
        if members < 2:
            return None
        thresholds = [] if self.thresholds is None else parse_thresholds(
            self.thresholds, fld.units, self.fv.lead_seconds()[0], f"'{fld.key}'")
        return EnsembleSums.empty(members, shape, thresholds, self.seed)


def _score_field(st: _Setup, fld: Field, offset: int, events: dict[str, EventScores]) -> dict[str, Any]:
    fv = st.fv
    shape = (len(st.masks), fv.inits.size, fv.leads.size)
    run = _Run(fv, fld, st.masks, area_weights(fv), st.notes, Sums.empty(shape), Sums.empty(shape),
               events=events, ens=st.ensemble_sums(fld, shape))
    for i in range(fv.inits.size):
        run.score_init(i)
        st.tick(offset + i + 1)
    return field_report(st, fld, run)


def field_report(st: _Setup, fld: Field, run: _Run) -> dict[str, Any]:
    """One field's tables from its filled sums (shared with the scores accumulated while forecasting)."""
    fv = st.fv
    if not np.isfinite(run.model.mse[0]).any():
        raise DataError(f"{fld.truth_source}: covers none of the forecast's valid times for '{fld.key}' "
                        f"({_span(fv)}); give observations for those times")
    if (note := _missing_note(run)) is not None:
        st.notes.append(note)
    with_acc = fld.clim is not None
    masked = 0 if run.ever_valid is None else int((~run.ever_valid).sum())
    events = {k: e.report([fld.key], [0])[fld.key] for k, e in run.events.items()}
    tables = field_tables(run.model, st.regions, fv, with_acc, st.boot)
    probabilistic = add_probabilistic(tables, run.ens, run.model, st.boot)
    return {**({"events": events["model"]} if events else {}), **probabilistic,
        "variable": fld.variable, "level": fld.level, "units": fld.units, "truth_variable": fld.truth_name,
        "kind": fld.kind,
        **tables,
        "masked_cells": masked,
        "missing_valid_times": len(run.missing),
        "missing_forecasts": run.missing_pairs,
        "references": {"persistence": {**field_tables(run.pers, st.regions, fv, with_acc, st.boot),
                                       **({"events": events["persistence"]} if events else {})}},
    }


def _span(fv: ForecastView) -> str:
    valid = np.concatenate([fv.valid_times(i) for i in range(fv.inits.size)])
    first, last = valid.min(), valid.max()
    return f"{str(first)[:16]} .. {str(last)[:16]}" if fv.calendar else f"frames {first} .. {last}"


def _open_fields(fv: ForecastView, tds: Any, cds: Any, srcs: tuple[str, str], explicit: bool,
                 notes: list[str]) -> tuple[list[Field], dict[str, str]]:
    """A `Field` per forecast field that has truth; the others in `not_scored` (an error when
    the user named them)."""
    fields: list[Field] = []
    not_scored = dict(fv.skipped)
    for key in fv.data:
        var, level = fv.field_of(key)
        try:
            truth = open_truth(tds, var, level, fv, srcs[0], notes)
        except DataError as exc:
            if explicit:
                raise
            not_scored[key] = f"no matching truth: {exc}"
            continue
        clim = open_climatology(cds, var, level, fv, srcs[1], notes) if cds is not None else None
        fields.append(Field(key, var, level, [key], [truth], "scalar", clim, fv.units(key), srcs[0]))
    if not fields:
        why = "; ".join(f"{k}: {v}" for k, v in not_scored.items())
        raise DataError(f"{srcs[0]}: no forecast variable can be scored ({why})")
    return fields + derived_fields([f for f in fields if fv.members(f.key) == 0]), not_scored


def score_forecast(
    forecast: str | os.PathLike[str] | Any,
    truth: str | os.PathLike[str] | Any,
    *,
    climatology: str | os.PathLike[str] | Any = None,
    variables: Sequence[str] | None = None,
    progress: Progress | None = None,
    coords: Mapping[str, str] | None = None,
    regions: str | Sequence[str] | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    thresholds: str | Sequence[str] | None = None,
    fss_scales: str | Sequence[int] | None = None,
) -> dict[str, Any]:
    """Score `forecast` (any supported layout) against `truth` over all initialisations.

    Returns a JSON-ready dict: ``variables`` -> per field {``per_lead``, ``overall``,
    ``regions``, ``references.persistence``, missing counts}, ``not_scored`` (variable ->
    why), plus ``notes`` on everything adapted. `regions`: WeatherBench2 region names, a
    comma-separated string or "all" (default global). `bootstrap`: resamples of the
    intervals (0: none). `thresholds` (the variables' units, or rates like "1mm/h") add POD,
    FAR, CSI, ETS and frequency bias, and FSS at `fss_scales` (cells; default 1, 5, 15).
    `progress` counts (field, initialisation) pairs.
    """
    import xarray as xr

    coords = coords or {}
    if bootstrap < 0:
        raise UsageError(f"`bootstrap` {bootstrap}: give a number of resamples, or 0 for no intervals")
    names = parse_regions(regions)
    fv = open_forecast(forecast, variables, coords, strict=False)
    tds = apply_coords(truth, coords, "truth", strict=False) if isinstance(truth, xr.Dataset) else open_dataset(
        truth, coords, strict=False)
    cds = None if climatology is None else (
        climatology if isinstance(climatology, xr.Dataset) else open_dataset(climatology, coords, strict=False))
    check_found(coords, [fv.handle, tds, cds], "forecast, truth and climatology files")
    srcs = (str(truth) if not isinstance(truth, xr.Dataset) else "truth dataset",
            str(climatology) if climatology is not None and not isinstance(climatology, xr.Dataset) else "climatology")
    masks, region_notes = region_masks(names, fv.y if fv.latlon else None, fv.x if fv.latlon else None,
                                       (fv.y.size, fv.x.size), asked=regions not in (None, "all"))
    notes = list(fv.notes) + region_notes
    fields, not_scored = _open_fields(fv, tds, cds, srcs, bool(variables), notes)
    tick = counted(progress, "score", len(fields) * fv.inits.size, "scoring initialisations")
    boot = Bootstrap(bootstrap, seed=seed) if bootstrap > 0 else None
    scales = parse_scales(fss_scales) if fss_scales is not None else list(DEFAULT_SCALES)
    st = _Setup(fv, list(masks), list(masks.values()), boot, notes, tick, thresholds, scales, seed)
    events = [st.event_scores(f) for f in fields]  # thresholds checked for every field before any compute
    results = {f.key: _score_field(st, f, k * fv.inits.size, events[k]) for k, f in enumerate(fields)}
    return score_report(st, srcs, climatology, results, not_scored)


def score_report(st: _Setup, srcs: tuple[str, str], climatology: Any, results: dict[str, Any],
                 not_scored: Mapping[str, str]) -> dict[str, Any]:
    """The report of `score_forecast` around its per-field `results`."""
    fv, notes, boot = st.fv, st.notes, st.boot
    notes.extend(f"{k} is not scored: {why}" for k, why in not_scored.items())
    return {
        "forecast": fv.source, "truth": srcs[0], "climatology": None if climatology is None else srcs[1],
        "acc_climatology": None if climatology is None else f"the climatology file {srcs[1]}",
        "layout": fv.layout, "init_times": fv.inits.size,
        "first_init": str(fv.inits.min())[:19], "last_init": str(fv.inits.max())[:19],
        "weights": "latitude cell areas" if fv.latlon else "uniform",
        "regions": describe_regions(st.regions),
        "confidence": None if boot is None else boot.describe(),
        "variables": results,
        "not_scored": not_scored,
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
    name, level = fv.field_of(var)
    fld = Field(var, name, level, [var], [open_truth(tds, name, level, fv, src, notes)], "scalar", None,
                fv.units(var), src)
    shape = (1, fv.inits.size, fv.leads.size)
    run = _Run(fv, fld, [np.ones((fv.y.size, fv.x.size), dtype=bool)], area_weights(fv), notes,
               Sums.empty(shape), Sums.empty(shape))
    obs, mask = fld.observe(fv.valid_times(init_index), notes)
    frames = np.full((fv.leads.size, fv.y.size, fv.x.size), np.nan)
    frames[mask] = obs
    run.score_init(init_index)
    rows = [{"rmse": _num(np.sqrt(run.model.mse[0, init_index, k])), "mae": _num(run.model.mae[0, init_index, k]),
             "bias": _num(run.model.bias[0, init_index, k])} for k in range(fv.leads.size)]
    return frames, mask, rows


def _num(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


__all__ = ["area_weights", "field_report", "init_scores", "score_forecast", "score_report"]
