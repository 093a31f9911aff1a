"""Forecast scores: the OpenSTL conventions of the paper, and WeatherBench2-style scores.

Two families, computed in one pass with streaming accumulators (float64 sums), so a test
set never has to be held in memory:

**OpenSTL-compatible** (docs/reference/official-behaviour.md §7, `openstl/core/metrics.py: metric()`), the
numbers of the paper's tables:

* prediction and target are de-normalised first (``x * std + mean`` per channel);
* weather: MSE / MAE are plain means over samples, frames, channels and pixels in
  physical units, and **RMSE = sqrt(global MSE)** (not a mean of per-sample RMSEs);
  WeatherBench-M style data (several channels per variable) reports ``mse_<var>`` etc.
  per variable group and the mean of the groups;
* images / flows: MSE and MAE are **per-frame sums over C x H x W**, averaged over
  (sample, frame) -- ``np.mean(err, axis=(0, 1)).sum()``;
* SSIM and PSNR on the prediction clipped to ``clip_range`` (target unclipped). SSIM is
  scikit-image's ``structural_similarity`` with ``data_range=2`` (what the pinned
  scikit-image <= 0.19 used for floats), a 7x7 uniform window, sample covariance, K1 0.01,
  K2 0.03, averaged over channels, then over all frames. PSNR per frame is
  ``20 log10(1 / sqrt(mse_frame))``. LPIPS (AlexNet) needs the ``lpips`` extra.

**WeatherBench2-style** (Rasp et al. 2024): per lead time and channel,

* latitude weights = cell areas ``sin(lat_hi) - sin(lat_lo)`` (proportional to cos(lat)
  on a regular grid), normalised to mean 1; uniform weights for non-lat/lon grids;
* RMSE = sqrt(mean over forecasts of the weighted spatial mean of err^2) (WB2 takes the
  square root *after* averaging over time), MAE and bias (forecast - truth) likewise;
* ACC = mean over forecasts of the uncentred anomaly correlation
  ``mean_w(f' o') / sqrt(mean_w(f'^2) mean_w(o'^2))`` with anomalies against a
  climatology of the training split (see :class:`Climatology`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from svqcast.errors import MissingExtraError

ArrayLike = Any  # numpy array or torch tensor

SSIM_WIN = 7
SSIM_DATA_RANGE = 2.0  # skimage <= 0.19 default for floats: dtype range [-1, 1]
SSIM_K1, SSIM_K2 = 0.01, 0.03

#: which OpenSTL metrics each dataset kind reports (openstl/datasets/dataset_constant.py)
OPENSTL_METRICS = {
    "weather": ("mse", "rmse", "mae"),
    "flow": ("mse", "mae", "ssim", "psnr"),
    "video": ("mse", "mae", "ssim", "psnr", "lpips"),
}


def as_float64(a: ArrayLike) -> torch.Tensor:
    """A float64 CPU tensor of a numpy array or tensor (every accumulator sums in float64)."""
    if isinstance(a, torch.Tensor):
        return a.detach().to("cpu", torch.float64)
    return torch.from_numpy(np.asarray(a, dtype=np.float64))


# --------------------------------------------------------------------------- SSIM / PSNR / LPIPS
# Hand-written on purpose: the paper's SSIM is scikit-image's legacy variant, and computing it
# batched in torch avoids a heavy dependency at run time (scikit-image is only the test oracle).


def ssim_frames(
    pred: ArrayLike,
    true: ArrayLike,
    data_range: float = SSIM_DATA_RANGE,
    win_size: int = SSIM_WIN,
    k1: float = SSIM_K1,
    k2: float = SSIM_K2,
) -> np.ndarray:
    """SSIM of every frame of ``(..., C, H, W)`` arrays: shape ``(...)``, float64.

    Equals ``skimage.metrics.structural_similarity(p, t, channel_axis=-1,
    data_range=data_range)`` on each frame moved to (H, W, C). scikit-image filters with a
    reflect-padded uniform window and then crops ``(win_size - 1) // 2`` pixels from every
    border, so only windows lying fully inside the image count: exactly a *valid* average
    pooling, which is what we compute (in float64), without any padding.
    """
    p, t = as_float64(pred), as_float64(true)
    if p.shape != t.shape:
        raise ValueError(f"ssim: shapes differ {tuple(p.shape)} vs {tuple(t.shape)}")
    *lead, c, h, w = p.shape
    if h < win_size or w < win_size:
        raise ValueError(f"ssim needs frames of at least {win_size}x{win_size}, got {h}x{w}")
    p = p.reshape(-1, 1, h, w)  # every (frame, channel) as one image
    t = t.reshape(-1, 1, h, w)

    def mean_filter(z: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(z, win_size, stride=1)

    n_p = win_size * win_size
    cov_norm = n_p / (n_p - 1)  # sample covariance
    ux, uy = mean_filter(p), mean_filter(t)
    uxx, uyy, uxy = mean_filter(p * p), mean_filter(t * t), mean_filter(p * t)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    per_channel = s.mean(dim=(1, 2, 3)).reshape(-1, c)
    return per_channel.mean(dim=1).reshape(lead).numpy()


def psnr_frames(pred: ArrayLike, true: ArrayLike, max_value: float = 1.0) -> np.ndarray:
    """PSNR of every frame of ``(..., C, H, W)`` arrays: ``20 log10(max / sqrt(mse))``,
    ``inf`` for a perfect frame (the official convention)."""
    p, t = as_float64(pred), as_float64(true)
    mse = ((p - t) ** 2).mean(dim=(-3, -2, -1)).numpy()
    with np.errstate(divide="ignore"):
        return np.where(mse == 0, np.inf, 20.0 * np.log10(max_value / np.sqrt(mse)))


_LPIPS_NET: Any = None


def lpips_frames(pred: ArrayLike, true: ArrayLike) -> np.ndarray:
    """LPIPS (AlexNet, as OpenSTL) of every frame of ``(..., C, H, W)`` arrays in [0, 1].

    Needs the optional ``lpips`` package (``pip install 'svqcast[lpips]'``). Frames are
    mapped to [-1, 1] (``lpips.im2tensor(img * 255)``); 1-channel frames broadcast to RGB.
    """
    global _LPIPS_NET
    try:
        import lpips
    except ImportError:
        raise MissingExtraError("LPIPS", "lpips", "lpips") from None
    if _LPIPS_NET is None:
        _LPIPS_NET = lpips.LPIPS(net="alex", verbose=False).eval()
    p = torch.as_tensor(np.asarray(pred, dtype=np.float32) if not isinstance(pred, torch.Tensor) else pred)
    t = torch.as_tensor(np.asarray(true, dtype=np.float32) if not isinstance(true, torch.Tensor) else true)
    *lead, c, h, w = p.shape
    p = p.reshape(-1, c, h, w).float() * 2 - 1
    t = t.reshape(-1, c, h, w).float() * 2 - 1
    if c == 1:
        p, t = p.expand(-1, 3, -1, -1), t.expand(-1, 3, -1, -1)
    with torch.no_grad():
        d = _LPIPS_NET(p, t).reshape(lead)
    return d.numpy().astype(np.float64)


# --------------------------------------------------------------------------- OpenSTL scores


def channel_groups(variables: Sequence[str], channels: int) -> list[tuple[str, slice]] | None:
    """WeatherBench-M style grouping: ``len(variables)`` groups of equal width when a
    variable spans several channels (levels); None when every channel is its own variable."""
    nv = len(variables)
    if nv == 0 or nv >= channels or channels % nv:
        return None
    width = channels // nv
    return [(str(v), slice(i * width, (i + 1) * width)) for i, v in enumerate(variables)]


class OpenSTLScores:
    """Streaming version of OpenSTL's ``metric()`` for one dataset kind.

    ``update`` takes *normalised* ``(B, T, C, H, W)`` prediction and target (what the model
    sees) and de-normalises them with ``mean`` / ``std`` per channel.
    """

    def __init__(
        self,
        kind: str,
        mean: Sequence[float],
        std: Sequence[float],
        clip_range: Sequence[float] | None = None,
        variables: Sequence[str] = (),
        metrics: Iterable[str] | None = None,
        lpips: bool = False,
    ) -> None:
        self.kind = kind
        self.mean = torch.tensor(list(mean), dtype=torch.float64).reshape(1, 1, -1, 1, 1)
        self.std = torch.tensor(list(std), dtype=torch.float64).reshape(1, 1, -1, 1, 1)
        self.clip = tuple(clip_range) if clip_range is not None else None
        wanted = tuple(metrics) if metrics is not None else OPENSTL_METRICS.get(kind, ("mse", "mae"))
        if self.clip is None:  # SSIM/PSNR/LPIPS are defined on [0, 1] images only
            wanted = tuple(m for m in wanted if m not in {"ssim", "psnr", "lpips"})
        if not lpips:
            wanted = tuple(m for m in wanted if m != "lpips")
        self.metrics = wanted
        self.groups = channel_groups(variables, len(mean)) if kind == "weather" else None
        self.sq = torch.zeros(len(mean), dtype=torch.float64)  # per-channel sums
        self.ab = torch.zeros(len(mean), dtype=torch.float64)
        self.cells = torch.zeros(len(mean), dtype=torch.float64)  # valid cells per channel
        self.masked = False  # some truth was missing: means over the valid cells only
        self.n_frames = 0
        self.pixels = 0  # H * W
        self.ssim_sum = 0.0
        self.psnr_sum = 0.0
        self.lpips_sum = 0.0

    def denormalise(self, x: ArrayLike) -> torch.Tensor:
        return as_float64(x) * self.std + self.mean

    def update(self, pred_norm: ArrayLike, true_norm: ArrayLike) -> None:
        p, t = self.denormalise(pred_norm), self.denormalise(true_norm)
        err = p - t
        valid = torch.isfinite(err)
        if not bool(valid.all()):  # missing truth (masked land, gaps): left out, counted per channel
            err = torch.where(valid, err, torch.zeros_like(err))
            self.masked = True
        self.sq += (err * err).sum(dim=(0, 1, 3, 4))
        self.ab += err.abs().sum(dim=(0, 1, 3, 4))
        self.cells += valid.to(torch.float64).sum(dim=(0, 1, 3, 4))
        self.n_frames += int(p.shape[0] * p.shape[1])
        self.pixels = int(p.shape[-1] * p.shape[-2])
        if self.clip is not None and any(m in self.metrics for m in ("ssim", "psnr", "lpips")):
            pc = p.clamp(self.clip[0], self.clip[1])
            if "ssim" in self.metrics:
                self.ssim_sum += float(ssim_frames(pc, t).sum())
            if "psnr" in self.metrics:
                self.psnr_sum += float(psnr_frames(pc, t).sum())
            if "lpips" in self.metrics:
                self.lpips_sum += float(lpips_frames(pc, t).sum())

    def compute(self) -> dict[str, float]:
        if self.n_frames == 0:
            raise ValueError("no samples were scored")
        out: dict[str, float] = {}
        channels = self.sq.numel()
        if self.kind == "weather":
            denom = self.n_frames * self.pixels
            if self.groups:
                per: dict[str, list[float]] = {"mse": [], "mae": [], "rmse": []}
                for name, sl in self.groups:
                    cells = float(self.cells[sl].sum()) if self.masked else denom * (sl.stop - sl.start)
                    mse_g = float(self.sq[sl].sum()) / cells
                    mae_g = float(self.ab[sl].sum()) / cells
                    for key, val in (("mse", mse_g), ("mae", mae_g), ("rmse", math.sqrt(mse_g))):
                        out[f"{key}_{name}"] = val
                        per[key].append(val)
                for key in ("mse", "mae", "rmse"):
                    out[key] = float(np.mean(per[key]))  # the official mean over groups
            else:
                cells = float(self.cells.sum()) if self.masked else denom * channels
                mse = float(self.sq.sum()) / cells
                out["mse"] = mse
                out["mae"] = float(self.ab.sum()) / cells
                out["rmse"] = math.sqrt(mse)
            out = {k: v for k, v in out.items() if k.split("_")[0] in self.metrics}
        else:  # per-frame sums over C x H x W, averaged over (sample, frame)
            if "mse" in self.metrics:
                out["mse"] = float(self.sq.sum()) / self.n_frames
            if "mae" in self.metrics:
                out["mae"] = float(self.ab.sum()) / self.n_frames
        if "ssim" in self.metrics:
            out["ssim"] = self.ssim_sum / self.n_frames
        if "psnr" in self.metrics:
            out["psnr"] = self.psnr_sum / self.n_frames
        if "lpips" in self.metrics:
            out["lpips"] = self.lpips_sum / self.n_frames
        return out


def openstl_metrics(
    pred_norm: ArrayLike,
    true_norm: ArrayLike,
    kind: str,
    mean: Sequence[float],
    std: Sequence[float],
    clip_range: Sequence[float] | None = None,
    variables: Sequence[str] = (),
    metrics: Iterable[str] | None = None,
) -> dict[str, float]:
    """One-shot :class:`OpenSTLScores` on whole ``(B, T, C, H, W)`` arrays."""
    acc = OpenSTLScores(kind, mean, std, clip_range, variables, metrics)
    acc.update(pred_norm, true_norm)
    return acc.compute()


# --------------------------------------------------------------------------- WeatherBench2-style


def lat_weights(lat: Sequence[float]) -> np.ndarray:
    """Cell-area weights of a latitude axis (degrees), normalised to mean 1.

    Cell bounds are the midpoints between neighbours (the outer ones mirrored), clipped
    to +-90; the area of a band is ``sin(upper) - sin(lower)``. On a regular grid this is
    exactly proportional to cos(lat) (``sin(a+d) - sin(a-d) = 2 cos(a) sin(d)``) except
    for bands that touch a pole. The order of the axis (N->S or S->N) does not matter.
    """
    lats = np.asarray(lat, dtype=np.float64)
    if lats.size == 1:
        return np.ones(1)
    order = np.argsort(lats)
    s = lats[order]
    mids = (s[1:] + s[:-1]) / 2
    lower = np.concatenate([[s[0] - (mids[0] - s[0])], mids])
    upper = np.concatenate([mids, [s[-1] + (s[-1] - mids[-1])]])
    lower, upper = np.clip(lower, -90, 90), np.clip(upper, -90, 90)
    area = np.sin(np.deg2rad(upper)) - np.sin(np.deg2rad(lower))
    w = np.empty_like(area)
    w[order] = area
    return w / w.mean()


def spatial_weights(dims: Sequence[str], coords: Mapping[str, Sequence[float]], shape: tuple[int, int]) -> np.ndarray:
    """(H, W) weights with mean 1: latitude cell areas on lat/lon grids, else uniform."""
    h, w = shape
    if len(dims) == 2 and dims[0] in {"lat", "latitude"} and dims[0] in coords:
        wl = lat_weights(coords[dims[0]])
        if wl.size == h:
            return np.repeat(wl[:, None], w, axis=1)
    return np.ones((h, w))


def weighted_mean(z: ArrayLike, w: ArrayLike, valid: ArrayLike | None = None) -> ArrayLike:
    """Spatial mean over the last two axes with weights `w` of mean 1 (numpy or torch alike).

    With `valid` (a boolean mask broadcastable to `z`), only valid cells count and the weights
    are renormalised over them, as WeatherBench2 does over a region; NaN where none is valid.
    Cells outside `valid` may hold anything, NaN included.
    """
    if valid is None:
        return (z * w).mean(axis=(-2, -1))
    wv = w * valid
    if isinstance(z, torch.Tensor):
        total = (torch.where(valid, z, torch.zeros_like(z)) * wv).sum(dim=(-2, -1))
        denom = wv.sum(dim=(-2, -1))
        return torch.where(denom > 0, total / torch.where(denom > 0, denom, torch.ones_like(denom)),
                           torch.full_like(total, float("nan")))
    total = (np.where(valid, z, 0.0) * wv).sum(axis=(-2, -1))
    denom = np.asarray(wv.sum(axis=(-2, -1)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, total / np.where(denom > 0, denom, 1.0), np.nan)


def error_means(forecast: ArrayLike, truth: ArrayLike, w: ArrayLike,
                valid: ArrayLike | None = None) -> tuple[ArrayLike, ArrayLike, ArrayLike]:
    """Weighted spatial means of err^2, |err| and err (err = forecast - truth): the one place
    MSE, MAE and bias are computed, for evaluation (torch) and file scoring (numpy) alike;
    `valid` restricts them to the valid cells of a mask (land, a region)."""
    err = forecast - truth
    return weighted_mean(err * err, w, valid), weighted_mean(abs(err), w, valid), weighted_mean(err, w, valid)


def anomaly_correlation(forecast: ArrayLike, truth: ArrayLike, clim: ArrayLike,
                        w: ArrayLike, valid: ArrayLike | None = None) -> tuple[ArrayLike, ArrayLike]:
    """(uncentred ACC, where it is defined) of fields against a climatology; 0 where undefined
    (a field equal to the climatology has no anomaly, or no cell is valid)."""
    fa, oa = forecast - clim, truth - clim
    num = weighted_mean(fa * oa, w, valid)
    den = (weighted_mean(fa * fa, w, valid) * weighted_mean(oa * oa, w, valid)) ** 0.5
    if isinstance(den, torch.Tensor):
        ok = torch.nan_to_num(den, nan=0.0) > 0
        return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(num)), ok
    ok = np.nan_to_num(den, nan=0.0) > 0
    with np.errstate(invalid="ignore"):
        return np.where(ok, num / np.where(ok, den, 1.0), 0.0), ok


def bootstrap_interval(values: np.ndarray, reduce: Any, *, resamples: int = 1000, level: float = 0.95,
                       seed: int = 0, chunk: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap bounds of ``reduce(values, axis=1)`` resampling the first axis.

    `values` is (n, ...), one row per initialisation, NaN where a row has no value; whole
    initialisations are drawn with replacement (``numpy.random.default_rng(seed).integers(0, n,
    (resamples, n))``, one draw shared by every column, so the same file always gives the same
    interval) and `reduce` must skip NaN (e.g. ``np.nanmean``). Resampling whole fields keeps
    their spatial correlation, which a per-cell bootstrap would break; successive
    initialisations are still correlated in time, so the interval is a lower bound on the
    real uncertainty. Columns with fewer than two values get NaN bounds.
    """
    vals = np.asarray(values, dtype=np.float64)
    lo = np.full(vals.shape[1:], np.nan)
    hi = np.full(vals.shape[1:], np.nan)
    n = vals.shape[0]
    if n < 2 or resamples < 1:
        return lo, hi
    picks = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN resamples of a sparse column
        stats = np.concatenate([reduce(vals[picks[k:k + chunk]], axis=1) for k in range(0, resamples, chunk)])
        tail = (1.0 - level) / 2.0
        lo, hi = np.nanquantile(stats, [tail, 1.0 - tail], axis=0)
    enough = np.isfinite(vals).sum(axis=0) >= 2
    return np.where(enough, lo, np.nan), np.where(enough, hi, np.nan)


def root_mean(values: np.ndarray, axis: int) -> np.ndarray:
    """sqrt of the NaN-skipping mean: RMSE from per-initialisation mean squared errors."""
    return np.sqrt(np.nanmean(values, axis=axis))


def normalised_weights(weights: ArrayLike) -> np.ndarray:
    """float64 weights scaled to mean 1."""
    w = np.asarray(weights, dtype=np.float64)
    return w / w.mean()


def acc_single(forecast: ArrayLike, truth: ArrayLike, clim: ArrayLike, weights: np.ndarray) -> float:
    """Uncentred weighted anomaly correlation of one 2-D field (for tests and notebooks)."""
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.mean()
    fa = np.asarray(forecast, dtype=np.float64) - np.asarray(clim, dtype=np.float64)
    oa = np.asarray(truth, dtype=np.float64) - np.asarray(clim, dtype=np.float64)
    return float((w * fa * oa).mean() / np.sqrt((w * fa * fa).mean() * (w * oa * oa).mean()))


__all__ = [
    "OPENSTL_METRICS",
    "OpenSTLScores",
    "acc_single",
    "as_float64",
    "anomaly_correlation",
    "bootstrap_interval",
    "error_means",
    "channel_groups",
    "lat_weights",
    "lpips_frames",
    "openstl_metrics",
    "psnr_frames",
    "root_mean",
    "spatial_weights",
    "ssim_frames",
    "weighted_mean",
]
