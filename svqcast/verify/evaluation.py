"""`svqcast evaluate`: score a trained model on a dataset split (docs/evaluation.md).

One pass over the split scores three forecasts side by side:

* ``model``        the checkpoint's prediction;
* ``persistence``  the last input frame, repeated for every lead time;
* ``climatology``  the training-split climatology at the target times
  (:class:`svqcast.data.climatology.Climatology`);
* ``same_hour_yesterday`` (``same_time_last_week`` for the flow datasets) for data with
  sub-daily calendar steps: the observation one period before each target time
  (:mod:`svqcast.verify.references`), the forecast that carries the daily (weekly) cycle.

For each: the OpenSTL-compatible scores of the paper's tables (``mse``, ``mae``, ``rmse``
or ``ssim``/``psnr``/``lpips`` by dataset kind) and WeatherBench2-style per-channel RMSE,
MAE, bias and ACC (latitude-weighted on lat/lon grids), averaged over lead times and, with
``per_lead_time=True``, per lead time. SVQ code-usage diagnostics are added when the model
has a quantizer. ``compat="openstl"`` reduces the report to the model's OpenSTL scores,
exactly the quantities of the official ``metric()``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from svqcast.config import typed_config
from svqcast.data import get_split_dataset
from svqcast.data.climatology import Climatology, PhaseDataset, climatology_from_dataset
from svqcast.data.spec import DataSpec
from svqcast.errors import DataError, MissingExtraError, UsageError
from svqcast.forecast.forecaster import Forecaster, load_network
from svqcast.forecast.writer import step_unit
from svqcast.models.phase import cycle_of, needs_phase
from svqcast.models.simvp import ReturnsAux
from svqcast.progress import Progress, counted
from svqcast.sources.leadtime import step_label
from svqcast.sources.timeaxis import iso_duration
from svqcast.training.distributed import pick_device
from svqcast.verify.calibrate import ensemble_skill
from svqcast.verify.eval_regions import add_intervals_and_regions, region_scores
from svqcast.verify.events import EventScores, parse_thresholds
from svqcast.verify.eventscores import EXTRAPOLATION, EventRequest
from svqcast.verify.metrics import OPENSTL_METRICS, SSIM_WIN, OpenSTLScores, spatial_weights
from svqcast.verify.nowcast import extrapolation_forecast
from svqcast.verify.probe import QuantizerProbe
from svqcast.verify.references import SeasonalReference, seasonal_reference
from svqcast.verify.score_tables import Bootstrap
from svqcast.verify.wb2scores import WB2Scores

FORECASTS = ("model", "persistence", "climatology")  # + the seasonal-naive one where defined
COMPAT = (None, "openstl")


class _Indexed(Dataset):
    """(x, y, i): the sample index travels with the batch, to look up target times."""

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        x, y = self.ds[i]
        return x, y, i


def _finite(v: Any) -> Any:
    """NaN/inf -> None so the report is valid JSON (undefined ACC, perfect PSNR)."""
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(float(v)) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


@dataclass
class _Split:
    """The dataset split being scored, as the checkpoint expects it."""

    name: str
    split: str
    ds: Any  # a WindowDataset
    loader_kwargs: dict[str, Any]
    notes: list[str]

    @property
    def spec(self) -> Any:
        return self.ds.spec


def _open_split(
    ckpt: Path, meta: Mapping[str, Any], dataset: str | None, split: str,
    root: str | Path | None, official_validation: bool,
) -> _Split:
    """The split of `dataset` (default: the checkpoint's) for the model's T_in / T_out."""

    cfg = typed_config(meta["config"])  # checked when the checkpoint was read; defaults merged
    name = dataset or (meta.get("data_spec") or {}).get("dataset") or cfg.data.dataset
    if not name:
        raise UsageError(f"{ckpt}: the checkpoint does not name its dataset; pass `dataset`")
    in_shape = list(cfg.model.in_shape)
    t_in, t_out = in_shape[0], cfg.model.out_frames
    kwargs: dict[str, Any] = {"t_in": t_in, "t_out": t_out, "root": root or cfg.data.root or None}
    if official_validation:
        kwargs["official_validation"] = True
    trained = meta.get("data_spec") or {}
    if trained.get("mean") is not None and trained.get("std") is not None:
        kwargs["stats"] = (trained["mean"], trained["std"])  # the model's own statistics, as predict uses
    ds = get_split_dataset(name, split, **kwargs)
    if trained.get("dataset") not in (None, name):
        _check_same_data(ckpt, trained, ds.spec)
    if len(ds) == 0:
        raise DataError(f"{name}/{split}: no samples for T_in={t_in}, T_out={t_out}")
    x0, _ = ds[0]
    if list(x0.shape) != in_shape:
        raise UsageError(f"{ckpt}: the model expects clips {in_shape}, {name} gives {list(x0.shape)}")
    notes = [f"{name} is normalised with the checkpoint's statistics (trained on {trained.get('dataset')})"
             ] if trained.get("dataset") not in (None, name) else []
    return _Split(name, split, ds, kwargs, notes)


def _check_same_data(ckpt: Path, trained: Mapping[str, Any], spec: Any) -> None:
    """A model scored on another dataset must see the data it was trained on: the same variables,
    units, grid (values and latitude order) and time step, or the scores describe nothing."""
    checks = [
        ("variables", list(trained.get("channel_names") or trained.get("variables") or []),
         list(spec.channel_names or spec.variables)),
        ("units", list(trained.get("units") or []), list(spec.units)),
    ]
    if trained.get("time_step_seconds") and spec.time_step_seconds:  # frame data may know no step
        checks.append(("time step", trained["time_step_seconds"], spec.time_step_seconds))
    for dim in trained.get("dims") or []:
        checks.append((f"grid ({dim})", np.round(np.asarray((trained.get("coords") or {}).get(dim, []), float), 6)
                       .tolist(), np.round(np.asarray(spec.coords.get(dim, []), float), 6).tolist()))
    for what, want, got in checks:
        if want != got:
            raise UsageError(f"the model {ckpt} was trained on dataset {trained.get('dataset')}, whose {what} "
                             f"differs from {spec.dataset}'s ({_short(want)} vs {_short(got)}); score it on data "
                             "like its own, or train a model on this dataset")


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _use_lpips(spec: Any, lpips: bool | None, notes: list[str]) -> bool:
    """LPIPS for video data in [0, 1]: required (True), when installed (None), or off."""
    use = False
    if spec.kind == "video" and spec.clip_range is not None:
        if lpips is True:
            use = True
        elif lpips is None:
            try:
                import lpips as _lp  # noqa: F401  # type: ignore[import-not-found]

                use = True
            except ImportError:
                notes.append("lpips not computed: pip install 'svqcast[lpips]'")
    if use:
        try:
            import lpips as _lp  # noqa: F401,F811  # type: ignore[import-not-found]
        except ImportError:
            raise MissingExtraError("LPIPS", "lpips", "lpips") from None
    if spec.clip_range is None and spec.kind != "weather":
        notes.append("ssim/psnr are defined on [0, 1] images; this dataset has no clip range")
    return use


@dataclass
class _Scores:
    """The running scores of every forecast: OpenSTL-compatible, and WB2-style unless
    `compat` asks for the OpenSTL report only (then `clim` is None and `wb2` empty)."""

    forecasts: tuple[str, ...]
    openstl: dict[str, OpenSTLScores]
    wb2: dict[str, WB2Scores]
    clim: Climatology | None
    mean: np.ndarray  # (1, 1, C, 1, 1) physical = normalised * std + mean
    std: np.ndarray
    samples: int = 0
    seasonal: SeasonalReference | None = None
    seasonal_samples: int = 0  # samples whose seasonal-naive observations exist
    events: dict[str, EventScores] = field(default_factory=dict)  # per forecast, with thresholds
    event_channels: list[int] = field(default_factory=list)
    regions: dict[str, dict[str, WB2Scores]] = field(default_factory=dict)  # region -> forecast -> scores
    boot: Bootstrap | None = None

    def update_wb2(self, f: str, forecast: np.ndarray, truth: np.ndarray, clim: np.ndarray) -> None:
        self.wb2[f].update(forecast, truth, clim)
        for per_forecast in self.regions.values():
            per_forecast[f].update(forecast, truth, clim)


def _scores(sp: _Split, compat: str | None, use_lpips: bool, events: EventRequest, regions: Any = None,
            boot: Bootstrap | None = None) -> _Scores:
    spec = sp.spec
    forecasts = ("model",) if compat == "openstl" else FORECASTS
    seasonal = None if compat == "openstl" else seasonal_reference(sp.name, spec, **sp.loader_kwargs)
    if seasonal is not None:
        forecasts = (*forecasts, seasonal.name)
    if compat is None and events.extrapolation(spec, sp.notes):
        forecasts = (*forecasts, EXTRAPOLATION)
    wanted = OPENSTL_METRICS.get(spec.kind, ("mse", "mae"))
    h, w = (len(spec.coords.get(d, [])) for d in spec.dims[:2])
    if "ssim" in wanted and 0 < min(h, w) < SSIM_WIN:  # SSIM's 7x7 window does not fit the frame
        wanted = tuple(m for m in wanted if m != "ssim")
        sp.notes.append(f"ssim is not reported: its {SSIM_WIN}x{SSIM_WIN} window needs frames of at least that "
                        f"size, these are {h}x{w}")
    openstl = {
        f: OpenSTLScores(spec.kind, spec.mean, spec.std, spec.clip_range, spec.variables, metrics=wanted,
                         lpips=use_lpips and f == "model")
        for f in forecasts
    }
    clim: Climatology | None = None
    wb2: dict[str, WB2Scores] = {}
    if compat is None:
        clim = climatology_from_dataset(get_split_dataset(sp.name, "train", **sp.loader_kwargs))
        weights = spatial_weights(spec.dims, spec.coords, tuple(sp.ds[0][0].shape[-2:]))
        wb2 = {f: WB2Scores(weights, keep_samples=boot is not None) for f in forecasts}
        by_region = region_scores(spec, regions, forecasts, weights, sp.notes)
    mean = np.asarray(spec.mean, dtype=np.float64).reshape(1, 1, -1, 1, 1)
    std = np.asarray(spec.std, dtype=np.float64).reshape(1, 1, -1, 1, 1)
    channels, made = ([], {}) if compat is not None else events.accumulators(spec, forecasts, sp.notes)
    return _Scores(forecasts, openstl, wb2, clim, mean, std, seasonal=seasonal, events=made, event_channels=channels,
                   regions=by_region if compat is None else {}, boot=boot)


def _score_batches(
    model: torch.nn.Module, dev: torch.device, sp: _Split, sc: _Scores, probe: QuantizerProbe,
    batch_size: int, max_batches: int | None, progress: Progress | None = None,
) -> None:
    """One pass over the split: the model's, persistence's and climatology's scores, reporting
    batches to `progress`."""

    loader = DataLoader(_Indexed(sp.ds), batch_size=batch_size, shuffle=False)
    total = len(loader) if max_batches is None else min(len(loader), max_batches)
    phases = PhaseDataset(sp.ds, cycle_of(model)).phases if needs_phase(model) else None
    tick = counted(progress, "evaluate", total, "scoring batches")
    with torch.no_grad():
        for b, (x, y, idx) in enumerate(loader):
            if max_batches is not None and b >= max_batches:
                break
            extra = {} if phases is None else {"phase": torch.tensor([phases[int(i)] for i in idx], device=dev)}
            if isinstance(model, ReturnsAux):
                out = model.forward_with_aux(x.to(dev), **extra)
                pred, diagnostics = out.pred, out.diagnostics
            else:
                pred, diagnostics = model(x.to(dev), **extra), {}
            pred = pred.float().cpu()
            probe.after_batch(diagnostics)
            sc.openstl["model"].update(pred, y)
            sc.samples += int(x.shape[0])
            if sc.clim is not None:
                _score_references(sp, sc, x, y, idx, pred)
            tick(b + 1)


def _score_references(sp: _Split, sc: _Scores, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor,
                      pred: torch.Tensor) -> None:
    """Persistence and climatology for one batch, and the WB2 scores of all three."""
    assert sc.clim is not None
    mean, std = sc.mean, sc.std
    persist_n = x[:, -1:].expand(-1, y.shape[1], -1, -1, -1)
    clim_phys = np.stack([sc.clim.at(sp.ds.times(int(i))[1]) for i in idx])
    clim_n = torch.from_numpy((clim_phys - mean[0]) / std[0])
    y_phys = y.double().numpy() * std + mean
    others = [("model", pred), ("persistence", persist_n), ("climatology", clim_n)]
    if EXTRAPOLATION in sc.forecasts:  # the optical-flow nowcast from the (physical) inputs
        ext = extrapolation_forecast(x.double().numpy() * std + mean, int(y.shape[1]))
        others.append((EXTRAPOLATION, torch.from_numpy((ext - mean) / std)))
    for f, fc in others:
        if f != "model":
            sc.openstl[f].update(fc, y)
        # the climatology forecast in exact physical units (a normalise/de-normalise
        # round trip would leave rounding-noise anomalies and a meaningless ACC)
        phys = clim_phys if f == "climatology" else fc.double().numpy() * std + mean
        sc.update_wb2(f, phys, y_phys, clim_phys)
        if sc.events:
            sc.events[f].update(phys, y_phys, sc.event_channels)
    if sc.seasonal is not None:
        _score_seasonal(sp, sc, y, idx, y_phys, clim_phys)


def _score_seasonal(sp: _Split, sc: _Scores, y: torch.Tensor, idx: torch.Tensor, y_phys: np.ndarray,
                    clim_phys: np.ndarray) -> None:
    """The seasonal-naive forecast of one batch, on the samples whose observations one
    period back exist (all of them except near the start of the record)."""
    assert sc.seasonal is not None
    got = [sc.seasonal.forecast(sp.ds.times(int(i))[1]) for i in idx]
    keep = [j for j, g in enumerate(got) if g is not None]
    if not keep:
        return
    phys = np.stack([got[j] for j in keep])  # type: ignore[misc]
    name = sc.seasonal.name
    sc.openstl[name].update(torch.from_numpy((phys - sc.mean) / sc.std), y[keep])
    sc.update_wb2(name, phys, y_phys[keep], clim_phys[keep])
    if sc.events:
        sc.events[name].update(phys, y_phys[keep], sc.event_channels)
    sc.seasonal_samples += len(keep)


def _report(
    ref: str | Path, ckpt: Path, meta: Mapping[str, Any], sp: _Split, sc: _Scores,
    compat: str | None, per_lead_time: bool,
) -> dict[str, Any]:
    """The JSON-ready result (docs/evaluation.md)."""

    spec = sp.spec
    channels = list(spec.channel_names)
    counted = step_unit(spec)  # calendar or frame steps have no fixed length: leads in their unit
    step = spec.time_step_seconds if counted is None else None
    leads = [int(v) for v in spec.idx_out]
    result: dict[str, Any] = {
        "ref": str(ref), "checkpoint": str(ckpt), "preset": meta.get("preset"), "dataset": sp.name,
        "split": sp.split, "kind": spec.kind, "samples": sc.samples, "channels": channels,
        "units": list(spec.units), "lead_times": leads,
        "lead_time_seconds": [v * step for v in leads] if step else None,
        "lead_time_iso": [iso_duration(v * step) for v in leads] if step else None,  # ISO-8601, e.g. PT6H
        "lead_labels": [step_label(v, counted) for v in leads] if counted else None,  # "3 months"
    }
    if compat == "openstl":
        result["compat"] = "openstl"
        result["scores"] = {"model": sc.openstl["model"].compute()}
        return result
    assert sc.clim is not None
    result["weights"] = "latitude cell area (mean 1)" if spec.dims[0] in {"lat", "latitude"} else "uniform"
    result["climatology"] = sc.clim.describe()
    if sc.seasonal is not None:
        result["reference_samples"] = {sc.seasonal.name: sc.seasonal_samples}
        if sc.seasonal_samples < sc.samples:
            sp.notes.append(f"{sc.seasonal.name} scored on {sc.seasonal_samples} of {sc.samples} samples "
                            "(the others have no observation one period before their targets)")
    scores: dict[str, Any] = {}
    per_lead: dict[str, Any] = {}
    for f in sc.forecasts:
        if f == getattr(sc.seasonal, "name", None) and sc.seasonal_samples == 0:
            continue
        s = sc.wb2[f].compute()
        scores[f] = dict(sc.openstl[f].compute())
        scores[f]["wb2"] = {m: {c: float(np.nanmean(a[:, j])) if np.isfinite(a[:, j]).any() else None
                                for j, c in enumerate(channels)} for m, a in s.items()}
        scores[f]["wb2"]["crps"] = dict(scores[f]["wb2"]["mae"])  # deterministic forecasts: CRPS is MAE
        if per_lead_time:
            per_lead[f] = {m: {c: a[:, j].tolist() for j, c in enumerate(channels)} for m, a in s.items()}
    result["scores"] = scores
    result["crps_note"] = "every forecast here is deterministic: its CRPS equals its MAE (an ensemble: `members`)"
    add_intervals_and_regions(result, sc, channels, per_lead_time)
    if sc.events:
        result["events"] = {f: e.report(channels, sc.event_channels) for f, e in sc.events.items() if f in scores}
    if per_lead_time:
        result["per_lead_time"] = per_lead
    return result


def evaluate(
    ref: str | Path,
    dataset: str | None = None,
    split: str = "test",
    per_lead_time: bool = False,
    compat: str | None = None,
    *,
    root: str | Path | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    max_batches: int | None = None,
    lpips: bool | None = None,
    official_validation: bool = False,
    progress: Progress | None = None,
    thresholds: str | list[str] | None = None,
    fss_scales: str | list[int] | None = None,
    regions: str | list[str] | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    members: int | None = None,
) -> dict[str, Any]:
    """Score checkpoint `ref` on `split` of `dataset` (default: the dataset it was trained on).

    Returns a JSON-ready dict (see docs/evaluation.md). ``lpips=None`` computes LPIPS for
    video data when the ``lpips`` extra is installed and says so otherwise; ``True``
    requires it. ``max_batches`` scores only the first batches (quick checks). The model
    is loaded like every command loads one: its weights' sha256 is verified first.
    """
    if compat not in COMPAT:
        raise UsageError(f"`compat`: unknown '{compat}'; the only choice is 'openstl'")

    model, meta, ckpt, _ = load_network(str(ref))
    sp = _open_split(ckpt, meta, dataset, split, root, official_validation)
    dev = pick_device(device, option="`device` ")
    model = model.to(dev).eval()
    if bootstrap < 0:
        raise UsageError(f"`bootstrap` {bootstrap}: give a number of resamples, or 0 for no intervals")
    boot = Bootstrap(bootstrap, seed=seed) if bootstrap > 0 else None
    sc = _scores(sp, compat, _use_lpips(sp.spec, lpips, sp.notes), EventRequest(thresholds, fss_scales), regions,
                 boot)
    probe = QuantizerProbe(model)
    bs = int(batch_size or typed_config(meta["config"]).train.val_batch_size)
    _score_batches(model, dev, sp, sc, probe, bs, max_batches, progress)
    result = _report(ref, ckpt, meta, sp, sc, compat, per_lead_time)
    if members is not None and compat is None:
        fc = Forecaster(net=model.cpu(), spec=DataSpec.from_dict(dict(meta["data_spec"])), ref=str(ref), meta=meta)
        result["ensemble"] = _ensemble(fc, members, sp, root, thresholds)
    q = probe.report()
    if q is not None:
        result["quantizer"] = q
    if sp.notes:
        result["notes"] = sp.notes
    return _finite(result)


def _ensemble(fc: Forecaster, members: int, sp: _Split, root: Any, thresholds: Any = None) -> dict[str, Any]:
    """The model's noise ensemble (its fitted amplitude) on the split: CRPS, spread/skill, the
    deterministic MAE and a climatological ensemble's CRPS per lead (svqcast.verify.calibrate)."""
    if members < 2:
        raise UsageError(f"`members` {members}: an ensemble needs at least 2 members")
    if fc.spec.dataset != sp.name:
        raise UsageError(f"`members`: the ensemble is scored on the model's own dataset ({fc.spec.dataset}), "
                         f"not {sp.name}")
    spec = sp.spec
    events = parse_thresholds(thresholds, spec.units[0], spec.time_step_seconds, str(spec.channel_names[0]))
    return ensemble_skill(fc, members=members, split=sp.split, root=root, thresholds=events)


def result_rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The report as long-format rows (forecast, metric, channel, lead_time, value) for CSV."""
    rows: list[dict[str, Any]] = []
    for f, sc in result.get("scores", {}).items():
        for metric, value in sc.items():
            if metric == "wb2":
                for m, per_ch in value.items():
                    for ch, v in per_ch.items():
                        rows.append(
                            {"forecast": f, "metric": f"wb2_{m}", "channel": ch, "lead_time": "all", "value": v}
                        )
            elif metric == "wb2_ci":
                rows += [{"forecast": f, "metric": f"wb2_{m}_ci_{side}", "channel": ch, "lead_time": "all",
                          "value": bounds[k]} for m, per_ch in value.items() for ch, bounds in per_ch.items()
                         for k, side in enumerate(("lower", "upper"))]
            else:
                rows.append({"forecast": f, "metric": metric, "channel": "all", "lead_time": "all", "value": value})
    leads = result.get("lead_times") or []
    for region, per_f in (result.get("regions") or {}).items():
        for f, per_m in per_f.items():
            for m, per_ch in per_m.items():
                for ch, v in per_ch.items():
                    values = v if isinstance(v, list) else [v]
                    labels = leads if isinstance(v, list) else ["all"]
                    rows += [{"forecast": f, "metric": f"wb2_{m}@{region}", "channel": ch, "lead_time": lead,
                              "value": x} for lead, x in zip(labels, values, strict=False)]
    for f, per_channel in (result.get("events") or {}).items():
        for ch, per_threshold in per_channel.items():
            for thr, row in per_threshold.items():
                for metric in ("pod", "far", "csi", "ets", "frequency_bias"):
                    rows += [{"forecast": f, "metric": f"{metric}@{thr}", "channel": ch, "lead_time": lead, "value": v}
                             for lead, v in zip(leads, row[metric], strict=False)]
                for scale, values in row["fss"].items():
                    rows += [{"forecast": f, "metric": f"fss{scale}@{thr}", "channel": ch, "lead_time": lead,
                              "value": v} for lead, v in zip(leads, values, strict=False)]
    for f, per in result.get("per_lead_time", {}).items():
        for m, per_ch in per.items():
            for ch, values in per_ch.items():
                for lead, v in zip(leads, values, strict=False):
                    rows.append({"forecast": f, "metric": f"wb2_{m}", "channel": ch, "lead_time": lead, "value": v})
    return rows


def zoo_metrics(result: Mapping[str, Any], digits: int = 4) -> dict[str, Any]:
    """The `metrics` table of a zoo registry entry from an `evaluate(..., per_lead_time=True)`
    result: per forecast, OpenSTL MAE and RMSE (MSE where it has none), then per channel the WB2-style MAE/RMSE averaged
    over leads and per lead (lists), rounded; a test pins that the registry holds exactly
    these numbers for every bundled model. Keys: ``<forecast>_<metric>[_latw][_by_lead]``
    (``_latw`` where the weights are latitude weights), with ``_<channel>`` appended when
    the model has more than one channel."""
    channels = list(result["channels"])
    wsuf = "_latw" if str(result.get("weights") or "").startswith("latitude") else ""
    out: dict[str, Any] = {"test_samples": int(result["samples"])}
    for f, sc in result["scores"].items():
        key = "test" if f == "model" else f
        for m in ("mae", "rmse" if "rmse" in sc else "mse"):  # OpenSTL reports no RMSE for flows
            out[f"{key}_{m}"] = round(float(sc[m]), digits)
        per = (result.get("per_lead_time") or {}).get(f)
        for ch in channels:
            csuf = "" if len(channels) == 1 else f"_{ch}"
            for m in ("mae", "rmse"):
                out[f"{key}_{m}{wsuf}{csuf}"] = round(float(sc["wb2"][m][ch]), digits)
                if per:
                    out[f"{key}_{m}{wsuf}_by_lead{csuf}"] = [round(float(v), digits) for v in per[m][ch]]
    return out
