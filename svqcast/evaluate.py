"""`svqcast evaluate`: score a trained model on a dataset split (docs/evaluation.md).

One pass over the split scores three forecasts side by side:

* ``model``        the checkpoint's prediction;
* ``persistence``  the last input frame, repeated for every lead time;
* ``climatology``  the training-split climatology at the target times
  (:class:`svqcast.metrics.Climatology`).

For each: the OpenSTL-compatible scores of the paper's tables (``mse``, ``mae``, ``rmse``
or ``ssim``/``psnr``/``lpips`` by dataset kind) and WeatherBench2-style per-channel RMSE,
MAE, bias and ACC (latitude-weighted on lat/lon grids), averaged over lead times and, with
``per_lead_time=True``, per lead time. SVQ code-usage diagnostics are added when the model
has a quantizer. ``compat="openstl"`` reduces the report to the model's OpenSTL scores,
exactly the quantities of the official ``metric()``.
"""

from __future__ import annotations

import math
import sys
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from svqcast.checkpoint import WEIGHTS_NAME, load_checkpoint
from svqcast.errors import DataError, MissingExtraError, UsageError
from svqcast.metrics import (
    Climatology,
    OpenSTLScores,
    WB2Scores,
    climatology_from_dataset,
    spatial_weights,
)

FORECASTS = ("model", "persistence", "climatology")
COMPAT = (None, "openstl")
#: SVQ latents captured for code-usage diagnostics: the first batch, and at most this many
#: weight entries (tokens x N) of it, i.e. the first latent frames (the paper's Fig. 5/6
#: statistics are per-batch statistics as well)
DIAG_BATCHES = 1
DIAG_MAX_ENTRIES = 1 << 25


def resolve_ref(ref: str | Path) -> Path:
    """A checkpoint directory from a run dir (its ``best/``, else ``last/``), a checkpoint
    dir, or a zoo name / ``hf://`` reference (via ``svqcast.hub`` when installed)."""
    path = Path(ref).expanduser()
    if path.is_dir():
        if (path / WEIGHTS_NAME).is_file():
            return path
        for sub in ("best", "last"):
            if (path / sub / WEIGHTS_NAME).is_file():
                return path / sub
        raise DataError(
            f"{path}: neither a checkpoint ({WEIGHTS_NAME}) nor a run directory with best/ or last/"
        )
    try:
        from svqcast.hub import resolve_checkpoint  # type: ignore[attr-defined]
    except ImportError:
        raise UsageError(f"{ref}: no such directory (zoo names need svqcast.hub)") from None
    return Path(resolve_checkpoint(str(ref)))


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


class _QuantizerProbe:
    """Collects SVQ diagnostics: the model's own ``quantizer_diagnostics`` (mean over
    batches) and, for SVQ-like quantizers, code-usage statistics of their weights."""

    def __init__(self, model: torch.nn.Module) -> None:
        from svqcast.models.quantizers.base import Quantizer

        self.model = model
        self.quantizers = [m for m in model.modules() if isinstance(m, Quantizer)]
        self.latents: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(self.quantizers))}
        self.batches = 0
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.handles = []
        for i, q in enumerate(self.quantizers):
            self.handles.append(q.register_forward_pre_hook(self._hook(i)))

    def _hook(self, i: int) -> Any:
        def fn(module: torch.nn.Module, args: tuple[Any, ...]) -> None:
            if self.batches < DIAG_BATCHES and hasattr(module, "code_weights"):
                z = args[0].detach()
                per_frame = int(z[0].numel() // z.shape[1]) * int(getattr(module, "codebook_size", 1))
                frames = max(1, DIAG_MAX_ENTRIES // max(per_frame, 1))
                self.latents[i].append(z[:frames])

        return fn

    def after_batch(self) -> None:
        self.batches += 1
        diag = getattr(self.model, "quantizer_diagnostics", None) or {}
        for key, value in diag.items():
            try:
                v = float(torch.as_tensor(value).float().mean())
            except (TypeError, ValueError):
                continue
            self.sums[key] = self.sums.get(key, 0.0) + v
            self.counts[key] = self.counts.get(key, 0) + 1

    def report(self) -> dict[str, Any] | None:
        for h in self.handles:
            h.remove()
        if not self.quantizers:
            return None
        out: dict[str, Any] = {
            "quantizers": [type(q).__name__ for q in self.quantizers],
            "model_diagnostics": {k: self.sums[k] / self.counts[k] for k in self.sums},
        }
        from svqcast.models.quantizers.diagnostics import svq_diagnostics

        for i, q in enumerate(self.quantizers):
            zs = self.latents[i]
            if not zs:
                continue
            stats = [svq_diagnostics(q, z) for z in zs]
            keys = stats[0].keys()
            out[f"code_usage_{i}" if len(self.quantizers) > 1 else "code_usage"] = {
                k: float(np.mean([s[k] for s in stats])) for k in keys
            }
        return out


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
) -> dict[str, Any]:
    """Score checkpoint `ref` on `split` of `dataset` (default: the dataset it was trained on).

    Returns a JSON-ready dict (see docs/evaluation.md). ``lpips=None`` computes LPIPS for
    video data when the ``lpips`` extra is installed and says so otherwise; ``True``
    requires it. ``max_batches`` scores only the first batches (quick checks).
    """
    if compat not in COMPAT:
        raise UsageError(f"--compat: unknown '{compat}'; the only choice is 'openstl'")
    from svqcast.data import get_split_dataset
    from svqcast.train.distributed import pick_device

    ckpt = resolve_ref(ref)
    model, meta = load_checkpoint(ckpt)
    cfg = meta.get("config") or {}
    name = dataset or (meta.get("data_spec") or {}).get("dataset") or cfg.get("data", {}).get("dataset")
    if not name:
        raise UsageError(f"{ckpt}: the checkpoint does not name its dataset; pass --dataset")
    mcfg = cfg["model"]
    t_in = int(mcfg["in_shape"][0])
    t_out = int(mcfg.get("out_frames", t_in))
    kwargs: dict[str, Any] = {"t_in": t_in, "t_out": t_out,
                              "root": root or cfg.get("data", {}).get("root") or None}
    if official_validation:
        kwargs["official_validation"] = True
    ds = get_split_dataset(name, split, **kwargs)
    if len(ds) == 0:
        raise DataError(f"{name}/{split}: no samples for T_in={t_in}, T_out={t_out}")
    spec = ds.spec
    x0, _ = ds[0]
    if list(x0.shape) != [int(v) for v in mcfg["in_shape"]]:
        raise UsageError(
            f"{ckpt}: the model expects clips {list(mcfg['in_shape'])}, {name} gives {list(x0.shape)}"
        )
    notes: list[str] = []
    trained_spec = meta.get("data_spec") or {}
    if trained_spec.get("dataset") == name and trained_spec.get("mean") is not None:
        if not np.allclose(trained_spec["mean"], spec.mean) or not np.allclose(trained_spec["std"], spec.std):
            notes.append("the dataset's normalisation statistics differ from the checkpoint's")

    dev = pick_device(device)
    model = model.to(dev).eval()
    kind = spec.kind
    use_lpips = False
    if kind == "video" and spec.clip_range is not None:
        if lpips is True:
            use_lpips = True
        elif lpips is None:
            try:
                import lpips as _lp  # noqa: F401  # type: ignore[import-not-found]

                use_lpips = True
            except ImportError:
                notes.append("lpips not computed: pip install 'svqcast[lpips]'")
    if use_lpips:
        try:
            import lpips as _lp  # noqa: F401,F811  # type: ignore[import-not-found]
        except ImportError:
            raise MissingExtraError("LPIPS", "lpips", "lpips") from None
    if spec.clip_range is None and kind != "weather":
        notes.append("ssim/psnr are defined on [0, 1] images; this dataset has no clip range")

    forecasts = ("model",) if compat == "openstl" else FORECASTS
    mean = np.asarray(spec.mean, dtype=np.float64).reshape(1, 1, -1, 1, 1)
    std = np.asarray(spec.std, dtype=np.float64).reshape(1, 1, -1, 1, 1)
    openstl = {
        f: OpenSTLScores(kind, spec.mean, spec.std, spec.clip_range, spec.variables,
                         lpips=use_lpips and f == "model")
        for f in forecasts
    }
    clim: Climatology | None = None
    wb2: dict[str, WB2Scores] = {}
    if compat is None:
        train_ds = get_split_dataset(name, "train", **kwargs)
        clim = climatology_from_dataset(train_ds)
        weights = spatial_weights(spec.dims, spec.coords, tuple(x0.shape[-2:]))
        wb2 = {f: WB2Scores(weights) for f in forecasts}
    probe = _QuantizerProbe(model)

    bs = int(batch_size or cfg.get("train", {}).get("val_batch_size", 16))
    loader = DataLoader(_Indexed(ds), batch_size=bs, shuffle=False)
    n = 0
    with torch.no_grad():
        for b, (x, y, idx) in enumerate(loader):
            if max_batches is not None and b >= max_batches:
                break
            pred = model(x.to(dev)).float().cpu()
            probe.after_batch()
            openstl["model"].update(pred, y)
            n += int(x.shape[0])
            if compat == "openstl":
                continue
            persist_n = x[:, -1:].expand(-1, y.shape[1], -1, -1, -1)
            clim_phys = np.stack([clim.at(ds.times(int(i))[1]) for i in idx])  # type: ignore[union-attr]
            clim_n = torch.from_numpy((clim_phys - mean[0]) / std[0])
            y_phys = y.double().numpy() * std + mean
            for f, fc in (("model", pred), ("persistence", persist_n), ("climatology", clim_n)):
                if f != "model":
                    openstl[f].update(fc, y)
                # the climatology forecast in exact physical units (a normalise/de-normalise
                # round trip would leave rounding-noise anomalies and a meaningless ACC)
                phys = clim_phys if f == "climatology" else fc.double().numpy() * std + mean
                wb2[f].update(phys, y_phys, clim_phys)

    channels = list(spec.channel_names)
    result: dict[str, Any] = {
        "ref": str(ref),
        "checkpoint": str(ckpt),
        "preset": meta.get("preset"),
        "dataset": name,
        "split": split,
        "kind": kind,
        "samples": n,
        "channels": channels,
        "units": list(spec.units),
    }
    step = spec.time_step_seconds
    leads = [int(v) for v in spec.idx_out]
    result["lead_times"] = leads
    result["lead_time_seconds"] = [v * step for v in leads] if step else None
    if compat == "openstl":
        result["compat"] = "openstl"
        result["scores"] = {"model": openstl["model"].compute()}
    else:
        result["weights"] = "latitude cell area (mean 1)" if spec.dims[0] in {"lat", "latitude"} else "uniform"
        result["climatology"] = clim.describe()  # type: ignore[union-attr]
        scores: dict[str, Any] = {}
        per_lead: dict[str, Any] = {}
        for f in forecasts:
            s = wb2[f].compute()
            scores[f] = dict(openstl[f].compute())
            scores[f]["wb2"] = {m: {c: float(np.nanmean(a[:, j])) if np.isfinite(a[:, j]).any() else None
                                    for j, c in enumerate(channels)} for m, a in s.items()}
            if per_lead_time:
                per_lead[f] = {m: {c: a[:, j].tolist() for j, c in enumerate(channels)} for m, a in s.items()}
        result["scores"] = scores
        if per_lead_time:
            result["per_lead_time"] = per_lead
    q = probe.report()
    if q is not None:
        result["quantizer"] = q
    if notes:
        result["notes"] = notes
    return _finite(result)


def result_rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The report as long-format rows (forecast, metric, channel, lead_time, value) for CSV."""
    rows: list[dict[str, Any]] = []
    for f, sc in result.get("scores", {}).items():
        for metric, value in sc.items():
            if metric == "wb2":
                for m, per_ch in value.items():
                    for ch, v in per_ch.items():
                        rows.append({"forecast": f, "metric": f"wb2_{m}", "channel": ch, "lead_time": "all", "value": v})
            else:
                rows.append({"forecast": f, "metric": metric, "channel": "all", "lead_time": "all", "value": value})
    leads = result.get("lead_times") or []
    for f, per in result.get("per_lead_time", {}).items():
        for m, per_ch in per.items():
            for ch, values in per_ch.items():
                for lead, v in zip(leads, values):
                    rows.append({"forecast": f, "metric": f"wb2_{m}", "channel": ch, "lead_time": lead, "value": v})
    return rows


class _CallableModule(types.ModuleType):
    """`svqcast.evaluate` is both this module and the API function: once this module is
    imported, Python binds `svqcast.evaluate` to it, shadowing the lazily exported function,
    so the module forwards calls to :func:`evaluate`."""

    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return evaluate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
