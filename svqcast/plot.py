"""Figures of a forecast file: maps per lead time (forecast, truth, error) and error vs lead.

matplotlib is the optional extra `plot`; it runs headless (Agg backend). Truth is any
netCDF/zarr holding the variable at the forecast's valid times; it is read through the same
validation as `svqcast predict` input (aliases, grid orientation and cut-outs, units), so
an observation file in degC with descending latitudes compares correctly with a K forecast.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from svqcast.errors import DataError, MissingExtraError, UsageError
from svqcast.fsutil import atomic_path


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise MissingExtraError("svqcast plot", "plot", "matplotlib") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _check_target(path: Path, overwrite: bool) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"output directory {parent} does not exist; create it first (mkdir -p {parent})")
    if path.exists() and not overwrite:
        raise UsageError(f"{path} already exists; pass --overwrite to replace it")


def _hours(td: np.ndarray) -> np.ndarray:
    if np.issubdtype(td.dtype, np.timedelta64):
        return td / np.timedelta64(1, "h")
    return td.astype(float)


def _fmt_lead(h: float) -> str:
    return f"{h:g}h"


def _select_leads(hours: np.ndarray, wanted: Sequence[str] | None) -> list[int]:
    if wanted:
        import pandas as pd

        out = []
        for w in wanted:
            try:
                h = pd.Timedelta(w if not str(w).strip().isdigit() else f"{w}h") / pd.Timedelta(hours=1)
            except ValueError:
                raise UsageError(f"--lead-time: cannot parse '{w}' (e.g. 6h)") from None
            idx = np.flatnonzero(np.isclose(hours, h))
            if idx.size == 0:
                raise UsageError(f"--lead-time {w}: not in the file (it has {_fmt_lead(hours[0])}..{_fmt_lead(hours[-1])})")
            out.append(int(idx[0]))
        return out
    n = hours.size
    k = min(4, n)
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, k)}) if n > 1 else [0]


def _lat_weights(ds: Any, shape: tuple[int, int]) -> np.ndarray:
    if "lat" in ds.coords:
        w = np.cos(np.deg2rad(ds["lat"].values.astype(np.float64)))
        w = w / w.mean()
        return np.broadcast_to(w[:, None], shape)
    return np.ones(shape)


def _truth_frames(truth: Path, fc: Any, var: str, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Truth on the forecast grid at the valid times it covers: (frames (n, H, W), mask of leads)."""
    from svqcast.io import _time_dims, open_input, prepare_input

    tds = open_input(truth)
    names = [str(v) for v in tds.data_vars]
    tdim = None
    for name in names:
        dims = _time_dims(tds[name])
        if dims:
            tdim = dims[0]
            break
    if tdim is None or tdim not in tds.coords:
        raise DataError(f"{truth}: no time coordinate; truth must cover the forecast's valid times")
    have = set(np.asarray(tds[tdim].values).astype("datetime64[ns]").tolist())
    mask = np.array([v in have for v in valid.astype("datetime64[ns]").tolist()])
    if not mask.any():
        raise DataError(
            f"{truth}: covers none of the forecast's valid times ({str(valid[0])[:16]} .. {str(valid[-1])[:16]})"
        )
    covered = valid[mask].astype("datetime64[ns]")
    # one "frame" = the gcd of the valid-time spacings, so every covered time is an offset
    step_ns = int(np.gcd.reduce(np.diff(covered).astype(np.int64))) if covered.size > 1 else 3_600_000_000_000
    offsets = ((covered - covered[-1]).astype(np.int64) // step_ns).tolist()
    dims = ["lat", "lon"] if "lat" in fc.coords else ["y", "x"]
    spec = {
        "channel_names": [var],
        "variables": [var],
        "units": [fc[var].attrs.get("units", "")],
        "dims": dims,
        "coords": {d: fc[d].values.tolist() for d in dims},
        "time_step_seconds": step_ns / 1e9,
        "t_in": len(offsets),
        "t_out": 1,
        "idx_in": offsets,
        "idx_out": [1],
    }
    prep = prepare_input(truth, spec, init_time=covered[-1])
    return prep.frames[0, :, 0], mask


def plot_forecast(
    file: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    truth: str | os.PathLike[str] | None = None,
    var: str | None = None,
    lead_times: Sequence[str] | None = None,
    animate: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    init_index: int = 0,
) -> dict[str, Any]:
    """Write the figure (and optional GIF); return per-lead scores when truth is given."""
    import xarray as xr

    output = Path(output)
    _check_target(output, overwrite)
    if animate is not None:
        _check_target(Path(animate), overwrite)
    plt = _pyplot()
    try:
        fc = xr.open_dataset(file)
    except FileNotFoundError:
        raise DataError(f"{file}: no such file") from None
    except Exception as exc:
        raise DataError(f"{file}: cannot read as netCDF ({str(exc)[:160]})") from None
    names = [str(v) for v in fc.data_vars]
    if not names:
        raise DataError(f"{file}: no data variables")
    var = var or names[0]
    if var not in fc:
        raise UsageError(f"--var {var}: not in {file} (it has {', '.join(names)})")
    da = fc[var]
    if "lead_time" not in da.dims:
        raise DataError(f"{file}: '{var}' has no lead_time dimension; is it a svqcast forecast?")
    if "time" in da.dims:
        da = da.isel(time=init_index)
    units = da.attrs.get("units", "")
    values = np.asarray(da.transpose("lead_time", ...).values, dtype=np.float64)  # (L, H, W)
    hours = _hours(np.asarray(fc["lead_time"].values))
    lat_name = "lat" if "lat" in fc.coords else ("y" if "y" in fc.coords else None)
    lon_name = "lon" if "lon" in fc.coords else ("x" if "x" in fc.coords else None)
    ys = fc[lat_name].values if lat_name else np.arange(values.shape[1])
    xs = fc[lon_name].values if lon_name else np.arange(values.shape[2])
    init = fc["time"].values[init_index] if "time" in fc.coords else None

    truth_vals = None
    mask = np.ones(hours.size, dtype=bool)
    if truth is not None:
        if "valid_time" not in fc.coords:
            raise DataError(f"{file}: no valid_time coordinate; cannot match truth in time")
        valid = np.asarray(fc["valid_time"].values)
        valid = valid[init_index] if valid.ndim == 2 else valid
        t_frames, mask = _truth_frames(Path(truth), fc, var, valid)
        truth_vals = np.full_like(values, np.nan)
        truth_vals[mask] = t_frames

    sel = _select_leads(hours, lead_times)
    weights = _lat_weights(fc, values.shape[1:])
    scores: list[dict[str, Any]] = []
    if truth_vals is not None:
        for i in np.flatnonzero(mask):
            err = values[i] - truth_vals[i]
            scores.append({
                "lead_time": _fmt_lead(hours[i]),
                "mae": float(np.sum(weights * np.abs(err)) / weights.sum()),
                "rmse": float(math.sqrt(np.sum(weights * err**2) / weights.sum())),
                "bias": float(np.sum(weights * err) / weights.sum()),
            })

    cols = 3 if truth_vals is not None else 1
    vmin = float(np.nanmin(values if truth_vals is None else np.concatenate([values, truth_vals[mask]])))
    vmax = float(np.nanmax(values if truth_vals is None else np.concatenate([values, truth_vals[mask]])))
    emax = float(np.nanmax(np.abs(values[mask] - truth_vals[mask]))) if truth_vals is not None else 1.0
    title_time = f" from {str(init)[:16]}" if init is not None else ""

    def _panels(axes_row: Sequence[Any], i: int) -> None:
        im = axes_row[0].pcolormesh(xs, ys, values[i], shading="nearest", vmin=vmin, vmax=vmax, cmap="RdYlBu_r")
        axes_row[0].set_title(f"forecast +{_fmt_lead(hours[i])}", fontsize=9)
        plt.colorbar(im, ax=axes_row[0], label=units, shrink=0.85)
        if truth_vals is not None:
            if mask[i]:
                im = axes_row[1].pcolormesh(xs, ys, truth_vals[i], shading="nearest", vmin=vmin, vmax=vmax, cmap="RdYlBu_r")
                plt.colorbar(im, ax=axes_row[1], label=units, shrink=0.85)
                im = axes_row[2].pcolormesh(
                    xs, ys, values[i] - truth_vals[i], shading="nearest", vmin=-emax, vmax=emax, cmap="RdBu_r"
                )
                plt.colorbar(im, ax=axes_row[2], label=units, shrink=0.85)
            axes_row[1].set_title(f"truth +{_fmt_lead(hours[i])}", fontsize=9)
            axes_row[2].set_title("error (forecast - truth)", fontsize=9)
        for ax in axes_row:
            ax.set_aspect("equal" if lat_name != "lat" else 1.0 / max(math.cos(math.radians(float(np.mean(ys)))), 0.2))
            ax.tick_params(labelsize=7)

    rows = len(sel) + 1
    fig = plt.figure(figsize=(3.6 * cols + 0.6, 2.6 * rows + 0.4), constrained_layout=True)
    grid = fig.add_gridspec(rows, cols)
    for r, i in enumerate(sel):
        _panels([fig.add_subplot(grid[r, c]) for c in range(cols)], i)
    ax = fig.add_subplot(grid[rows - 1, :])
    if scores:
        h = [float(s["lead_time"][:-1]) for s in scores]
        ax.plot(h, [s["mae"] for s in scores], "o-", label="MAE", ms=3)
        ax.plot(h, [s["rmse"] for s in scores], "s-", label="RMSE", ms=3)
        ax.set_ylabel(f"error ({units})")
        ax.set_title("latitude-weighted error vs lead time" if lat_name == "lat" else "error vs lead time", fontsize=9)
    else:
        mean = np.sum(weights * values, axis=(1, 2)) / weights.sum()
        ax.plot(hours, mean, "o-", ms=3, label="domain mean")
        ax.fill_between(hours, values.min(axis=(1, 2)), values.max(axis=(1, 2)), alpha=0.2, label="min..max")
        ax.set_ylabel(units)
        ax.set_title("forecast domain mean vs lead time", fontsize=9)
    ax.set_xlabel("lead time (h)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle(f"{var}{title_time} ({fc.attrs.get('svqcast_model', '')})", fontsize=10)
    suffix = output.suffix.lstrip(".").lower() or "png"
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format=suffix, dpi=90)
    plt.close(fig)

    result: dict[str, Any] = {"figure": str(output), "variable": var, "units": units, "scores": scores,
                              "lead_times_mapped": [_fmt_lead(hours[i]) for i in sel]}
    if animate is not None:
        from matplotlib.animation import FuncAnimation, PillowWriter

        fig = plt.figure(figsize=(3.6 * cols + 0.6, 3.0), constrained_layout=True)

        def _frame(i: int) -> list[Any]:
            fig.clear()
            g = fig.add_gridspec(1, cols)
            _panels([fig.add_subplot(g[0, c]) for c in range(cols)], i)
            fig.suptitle(f"{var}{title_time}", fontsize=9)
            return []

        anim = FuncAnimation(fig, _frame, frames=range(values.shape[0]), blit=False)
        target = Path(animate)
        # Pillow picks the format from the extension, so the temp file keeps ".gif"
        tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp.gif")
        try:
            anim.save(str(tmp), writer=PillowWriter(fps=3))
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        plt.close(fig)
        result["animation"] = str(animate)
    fc.close()
    return result
