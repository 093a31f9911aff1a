"""`WB2Scores`: WeatherBench2-style scores of a model on a split, accumulated batch by batch.

Per lead time and channel: RMSE, MAE, bias and ACC with latitude weights (the functions of
`svqcast.verify.metrics`), over the valid cells of an optional region mask. With
`keep_samples`, each sample's spatial means are kept too (a few floats per sample), so
`intervals` can bootstrap over samples (initialisations) as `svqcast score` does.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from svqcast.verify.metrics import (
    ArrayLike,
    anomaly_correlation,
    as_float64,
    bootstrap_interval,
    error_means,
    root_mean,
)


class WB2Scores:
    """Per-lead-time, per-channel RMSE / MAE / bias / ACC with spatial weights (WB2 style).

    ``update`` takes *physical-unit* ``(B, T, C, H, W)`` forecast and truth, and optionally
    the climatology at the target times (same shape) for ACC.
    """

    def __init__(self, weights: np.ndarray, region: np.ndarray | None = None, keep_samples: bool = False) -> None:
        w = torch.as_tensor(np.asarray(weights, dtype=np.float64))
        self.w = w / w.mean()
        self.region = None if region is None else torch.as_tensor(np.asarray(region, dtype=bool))
        self.samples: dict[str, list[np.ndarray]] | None = (
            {"rmse": [], "mae": [], "bias": [], "acc": []} if keep_samples else None)
        self.sq: torch.Tensor | None = None  # (T, C) sums over forecasts
        self.ab: torch.Tensor | None = None
        self.bias: torch.Tensor | None = None
        self.acc: torch.Tensor | None = None
        self.acc_n: torch.Tensor | None = None
        self.count: torch.Tensor | None = None  # (T, C) forecasts scored (a field with no valid cell is not)
        self.n = 0

    def update(self, forecast: ArrayLike, truth: ArrayLike, clim: ArrayLike | None = None) -> None:
        f, o = as_float64(forecast), as_float64(truth)
        c = None if clim is None else as_float64(clim)
        ok = torch.isfinite(f) & torch.isfinite(o)
        if c is not None:
            ok &= torch.isfinite(c)
        if self.region is not None:
            ok &= self.region
        valid = None if bool(ok.all()) else ok  # missing cells (masked land, gaps) are left out
        sq, ab, bi = error_means(f, o, self.w, valid)
        if self.samples is not None:
            for key, value in (("rmse", sq), ("mae", ab), ("bias", bi)):
                self.samples[key].append(value.numpy().copy())
        counted = torch.isfinite(sq).to(torch.float64).sum(0)  # a field with no valid cell counts nowhere
        sq, ab, bi = (torch.nan_to_num(m, nan=0.0).sum(0) for m in (sq, ab, bi))
        if self.sq is None:
            self.sq, self.ab, self.bias, self.count = sq, ab, bi, counted
            self.acc = torch.zeros_like(sq)
            self.acc_n = torch.zeros_like(sq)
        else:
            assert self.ab is not None and self.bias is not None and self.count is not None
            self.sq += sq
            self.ab += ab
            self.bias += bi
            self.count += counted
        if c is not None:
            assert self.acc is not None and self.acc_n is not None  # set with the first sums above
            val, defined = anomaly_correlation(f, o, c, self.w, valid)
            self.acc += torch.where(defined, val, torch.zeros_like(val)).sum(0)
            self.acc_n += defined.to(torch.float64).sum(0)
            if self.samples is not None:
                self.samples["acc"].append(torch.where(defined, val, torch.full_like(val, float("nan"))).numpy())
        self.n += int(f.shape[0])

    def compute(self) -> dict[str, np.ndarray]:
        """Arrays of shape (T_out, C); ACC is NaN where undefined (e.g. the climatology
        forecast itself, whose anomaly is zero)."""
        if self.n == 0 or self.sq is None:
            raise ValueError("no samples were scored")
        assert self.ab is not None and self.bias is not None and self.acc is not None and self.acc_n is not None
        assert self.count is not None
        n = self.count
        out = {
            "rmse": torch.sqrt(self.sq / n).numpy(),
            "mae": (self.ab / n).numpy(),
            "bias": (self.bias / n).numpy(),
        }
        acc_n = self.acc_n.numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            out["acc"] = np.where(acc_n > 0, self.acc.numpy() / np.maximum(acc_n, 1), np.nan)
        return out

    def intervals(self, resamples: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, Any]:
        """Bootstrap bounds over samples: {metric: (per_lead (2, T, C), over leads (2, C))};
        needs `keep_samples`. RMSE resamples the per-sample mean squared errors."""
        if not self.samples or not self.samples["rmse"]:
            return {}
        out: dict[str, Any] = {}
        for key, chunks in self.samples.items():
            if not chunks:
                continue
            values = np.concatenate(chunks)  # (samples, T, C)
            reduce = root_mean if key == "rmse" else np.nanmean
            lo, hi = bootstrap_interval(values, reduce, resamples=resamples, level=level, seed=seed)
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                flat = np.nanmean(values, axis=1)  # each sample's mean over leads
            lo_all, hi_all = bootstrap_interval(flat, reduce, resamples=resamples, level=level, seed=seed)
            out[key] = (np.stack([lo, hi]), np.stack([lo_all, hi_all]))
        return out


__all__ = ["WB2Scores"]
