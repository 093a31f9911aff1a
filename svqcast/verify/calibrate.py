"""Fit the noise amplitude of a model's ensemble on its validation split, and store it.

`fit_noise_amplitude` runs noise ensembles on validation samples and scales each channel's
amplitude until the ensemble's spread matches its skill on average over the leads (the
finite-ensemble spread/skill ratio of `svqcast.verify.ensemble_metrics`, 1 for a calibrated
ensemble). The spread of initial-condition noise grows roughly in proportion to its amplitude,
so a few proportional updates converge. One amplitude cannot make every lead calibrated when
the network damps or amplifies perturbations with lead time, so a per-lead dispersion factor
is fitted last on the same samples (`svqcast.forecast.ensemble.apply_dispersion`: each lead's
deviations from the ensemble mean scaled by 1 / its spread/skill); both the amplitude's own
per-lead ratios and the calibrated ones are reported. `svqcast models calibrate` writes the result into a
copy of the checkpoint (config.json `ensemble`, and a table in the card).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from svqcast.data import get_split_dataset
from svqcast.errors import DataError
from svqcast.forecast.ensemble import DEFAULT_LENGTH, Members, apply_dispersion, noise_members
from svqcast.fsutil import atomic_dir, check_output
from svqcast.progress import Progress, counted
from svqcast.verify.ensemble_metrics import brier_ensemble, crps_ensemble, spread_skill_ratio
from svqcast.verify.metrics import spatial_weights, weighted_mean
from svqcast.zoo.card import ensemble_section
from svqcast.zoo.checkpoint import CARD_NAME, CONFIG_NAME

PROBE = 0.1  # first amplitude, as a fraction of each channel's training standard deviation
CAP = 1.0  # largest amplitude, in the same fraction: noise as large as the climate's variability says nothing


def _samples(fc: Any, split: str, count: int, root: Any) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (n, T_in, C, H, W) and truths (n, T_out, C, H, W) of `count` evenly spaced samples."""
    spec = fc.spec
    ds = get_split_dataset(spec.dataset, split, t_in=spec.t_in, t_out=spec.t_out, root=root,
                           stats=(spec.mean, spec.std))
    if len(ds) == 0:
        raise DataError(f"{spec.dataset}/{split}: no samples to calibrate on")
    picks = np.unique(np.linspace(0, len(ds) - 1, min(count, len(ds))).round().astype(int))
    xs, ys = zip(*(ds.raw(int(i)) for i in picks), strict=True)
    return np.stack(xs), np.stack(ys)


def _ratios(fc: Any, x: np.ndarray, y: np.ndarray, plan: Members, amplitude: np.ndarray,
            w: np.ndarray, dispersion: np.ndarray | None = None) -> np.ndarray:
    """Spread/skill per (lead, channel) of a noise ensemble with `amplitude` (and `dispersion`)."""
    values, _ = noise_members(fc, x, y.shape[1], plan, amplitude)  # (n, M, T, C, H, W)
    if dispersion is not None:
        values = apply_dispersion(values, dispersion)
    mean = values.mean(axis=1)
    var = values.var(axis=1, ddof=1)
    ok = np.isfinite(y)
    mse = np.nanmean(weighted_mean((mean - y) ** 2, w, ok), axis=0)  # (T, C)
    spread = np.nanmean(weighted_mean(var, w, ok), axis=0)
    return np.asarray(spread_skill_ratio(spread, mse, plan.count), dtype=np.float64)


def fit_noise_amplitude(fc: Any, *, members: int = 8, samples: int = 32, split: str = "val", iterations: int = 4,
                        length: float = DEFAULT_LENGTH, seed: int = 0, root: Any = None,
                        progress: Progress | None = None) -> dict[str, Any]:
    """The fitted amplitude per channel (physical units) and the per-lead spread/skill it gives."""
    x, y = _samples(fc, split, samples, root)
    w = spatial_weights(fc.spec.dims, fc.spec.coords, tuple(x.shape[-2:]))
    plan = Members(members, "noise", seed, length=length)
    amplitude = PROBE * np.asarray(fc.spec.std, dtype=np.float32)
    cap = CAP * np.asarray(fc.spec.std, dtype=np.float32)
    tick = counted(progress, "calibrate", iterations + 1, "fitting the noise amplitude")
    for k in range(iterations):
        ratio = _ratios(fc, x, y, plan, amplitude, w)
        scale = 1.0 / np.clip(np.nanmean(ratio, axis=0), 1e-3, None)  # mean over leads, per channel
        amplitude = np.minimum(amplitude * np.clip(scale, 0.1, 10.0), cap).astype(np.float32)
        tick(k + 1)
    ratio = _ratios(fc, x, y, plan, amplitude, w)
    dispersion = 1.0 / np.clip(ratio, 0.05, 20.0)  # (T, C): each lead's spread brought to its skill
    calibrated = _ratios(fc, x, y, plan, amplitude, w, dispersion)
    tick(iterations + 1)
    channels = [str(ch) for ch in fc.spec.channel_names]
    return {"kind": "noise", "amplitude": [float(a) for a in amplitude], "length_cells": float(length),
            "members": members, "seed": seed, "fitted_on": f"{fc.spec.dataset}/{split}", "samples": int(len(x)),
            "capped": [bool(a >= c) for a, c in zip(amplitude, cap, strict=True)],
            "dispersion": {ch: [float(d) for d in dispersion[:, c]] for c, ch in enumerate(channels)},
            "spread_skill_by_lead": {ch: [float(r) for r in calibrated[:, c]] for c, ch in enumerate(channels)},
            "spread_skill_by_lead_amplitude_only": {ch: [float(r) for r in ratio[:, c]]
                                                    for c, ch in enumerate(channels)}}


def write_calibrated(source: str | os.PathLike[str], fitted: dict[str, Any], output: str | os.PathLike[str],
                     *, overwrite: bool = False) -> Path:
    """A copy of checkpoint `source` whose config.json carries `fitted` under `ensemble` (the
    weights, and so their sha256, are unchanged) and whose card shows the per-lead table."""
    target = check_output(output, overwrite=overwrite, kind="dir", inputs=[source])
    with atomic_dir(target, overwrite=overwrite) as tmp:
        for item in Path(source).iterdir():
            if item.is_file():
                shutil.copy2(item, tmp / item.name)
        meta = json.loads((tmp / CONFIG_NAME).read_text())
        meta["ensemble"] = fitted
        (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2) + "\n")
        card = (tmp / CARD_NAME).read_text() if (tmp / CARD_NAME).exists() else ""
        (tmp / CARD_NAME).write_text(card.rstrip() + "\n\n" + ensemble_section(fitted))
    return target


__all__ = ["CAP", "PROBE", "ensemble_skill", "fit_noise_amplitude", "write_calibrated"]


def _hour_pool(train: Any) -> dict[int, np.ndarray]:
    """Training-split observations grouped by hour of day: a climatological ensemble's members."""
    frames: dict[int, list[np.ndarray]] = {}
    seen: set[int] = set()
    for i in range(len(train)):
        _, y = train.raw(i)
        _, times = train.times(i)
        for t, frame in zip(np.asarray(times).astype("datetime64[ns]"), y, strict=True):
            key = int(t.astype(np.int64))
            if key not in seen:
                seen.add(key)
                frames.setdefault(int(t.astype("datetime64[h]").astype(np.int64) % 24), []).append(frame)
    return {h: np.stack(v) for h, v in frames.items()}


def ensemble_skill(fc: Any, *, members: int = 8, split: str = "test", root: Any = None,
                   thresholds: Any = ()) -> dict[str, Any]:
    """Per lead on `split`: spread/skill and fair CRPS of the model's fitted noise ensemble, the
    deterministic model's MAE, and the fair CRPS of a climatological ensemble (the training
    split's observations at the same hour of day), all latitude-weighted, over every sample; with
    `thresholds` (events.Threshold) also the fair Brier score of each."""
    spec = fc.spec
    kwargs = {"t_in": spec.t_in, "t_out": spec.t_out, "root": root, "stats": (spec.mean, spec.std)}
    ds = get_split_dataset(spec.dataset, split, **kwargs)
    pool = _hour_pool(get_split_dataset(spec.dataset, "train", **kwargs))
    x, y = _samples(fc, split, len(ds), root)
    w = spatial_weights(spec.dims, spec.coords, tuple(x.shape[-2:]))
    plan = Members(members, "noise", 0, length=float((fc.meta.get("ensemble") or {}).get("length_cells", 3.0)))
    values, _ = noise_members(fc, x, y.shape[1], plan, fc.noise_amplitude(plan))  # (n, M, T, C, H, W)
    dispersion = fc.noise_dispersion(plan)
    if dispersion is not None:
        values = apply_dispersion(values, dispersion)
    det, _, _ = fc.rollout(x, y.shape[1])
    out: dict[str, list[Any]] = {k: [] for k in ("spread_skill", "crps", "mae", "crps_climatology")}
    hours = [[int(t.astype("datetime64[h]").astype(np.int64) % 24) for t in ds.times(int(i))[1]]
             for i in range(len(ds))]
    for j in range(y.shape[1]):
        truth = y[:, j]  # (n, C, H, W)
        ens = values[:, :, j]  # (n, M, C, H, W)
        mse = np.nanmean(weighted_mean((ens.mean(axis=1) - truth) ** 2, w), axis=0)  # per channel
        var = np.nanmean(weighted_mean(ens.var(axis=1, ddof=1), w), axis=0)
        out["spread_skill"].append(np.asarray(spread_skill_ratio(var, mse, members)))
        out["crps"].append(np.nanmean(weighted_mean(crps_ensemble(np.moveaxis(ens, 1, 0), truth), w), axis=0))
        out["mae"].append(np.nanmean(weighted_mean(np.abs(det[:, j] - truth), w), axis=0))
        clim = [weighted_mean(crps_ensemble(pool[hours[k][j]], truth[k]), w) for k in range(len(truth))]
        out["crps_climatology"].append(np.nanmean(np.stack(clim), axis=0))
        for thr in thresholds:
            brier = brier_ensemble(np.moveaxis(ens, 1, 0), truth, thr.value)
            out.setdefault(f"brier@{thr.label}", []).append(np.nanmean(weighted_mean(brier, w), axis=0))
    channels = [str(c) for c in spec.channel_names]
    table: dict[str, Any] = {k: {c: [float(v[ci]) for v in series] for ci, c in enumerate(channels)}
                             for k, series in out.items()}
    if len(channels) == 1:  # one channel: plain per-lead lists
        table = {k: v[channels[0]] for k, v in table.items()}
    return {"split": split, "samples": int(len(x)), "members": members, **table}
