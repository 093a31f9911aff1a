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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from svqcast.data.spec import DataSpec
from svqcast.errors import DataError, MissingExtraError, UsageError
from svqcast.forecast.inputs import prepare_input
from svqcast.fsutil import DEVNULL, atomic_path, check_input, check_output
from svqcast.sources.grid import time_dims
from svqcast.sources.opener import open_dataset


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise MissingExtraError("svqcast plot", "plot", "matplotlib") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


#: Figure formats matplotlib's Agg/PDF/SVG/PS backends write; checked before any rendering.
FIGURE_FORMATS = ("png", "pdf", "svg", "svgz", "jpg", "jpeg", "eps", "ps", "tif", "tiff", "webp")


def _check_targets(output: Path, animate: Path | None, overwrite: bool, inputs: Sequence[Any]) -> None:
    """Every reason not to write, found before the (slow) rendering: format, clashes, paths."""
    suffix = output.suffix.lstrip(".").lower()
    if suffix not in FIGURE_FORMATS and output != DEVNULL:
        raise UsageError(f"`output` {output}: unknown figure format '{output.suffix}'; use one of "
                         + ", ".join(f".{s}" for s in FIGURE_FORMATS))
    for item in inputs:
        if item is not None:
            check_input(item)
    check_output(output, overwrite=overwrite, inputs=inputs)
    if animate is None:
        return
    if animate.suffix.lower() != ".gif" and animate != DEVNULL:
        raise UsageError(f"`animate` {animate}: the animation is a GIF; give a name ending in .gif")
    if os.path.realpath(animate) == os.path.realpath(output) and animate != DEVNULL:
        raise UsageError(f"`output` and `animate` name the same file ({output}); give two different paths")
    check_output(animate, overwrite=overwrite, inputs=inputs)


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
                raise UsageError(f"`lead_time`: cannot parse '{w}' (e.g. 6h)") from None
            idx = np.flatnonzero(np.isclose(hours, h))
            if idx.size == 0:
                have = f"{_fmt_lead(hours[0])}..{_fmt_lead(hours[-1])}"
                raise UsageError(f"`lead_time` {w}: not in the file (it has {have})")
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

    tds = open_dataset(truth)
    names = [str(v) for v in tds.data_vars]
    tdim = None
    for name in names:
        dims = time_dims(tds[name])
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
    # a reading spec for the truth file: the forecast's grid and the covered valid times
    spec = DataSpec(
        dataset="truth", kind="weather", variables=[var], units=[fc[var].attrs.get("units", "")],
        channel_names=[var], dims=dims, coords={d: fc[d].values.tolist() for d in dims},
        time_step_seconds=step_ns / 1e9, t_in=len(offsets), t_out=1, mean=[0.0], std=[1.0],
        idx_in=offsets, idx_out=[1],
    )
    prep = prepare_input(truth, spec, init_time=covered[-1])
    return prep.frames[0, :, 0], mask


@dataclass
class _Frames:
    """What the figure shows: forecast (L, H, W), optional truth on the same grid, axes."""

    var: str
    units: str
    values: np.ndarray
    hours: np.ndarray
    xs: np.ndarray
    ys: np.ndarray
    geographic: bool
    title_time: str
    weights: np.ndarray
    truth: np.ndarray | None = None
    mask: np.ndarray = field(default_factory=lambda: np.ones(0, dtype=bool))


def _open_forecast(file: str | os.PathLike[str], var: str | None) -> tuple[Any, str]:
    import xarray as xr

    try:
        fc = xr.open_dataset(file)
    except FileNotFoundError:
        raise DataError(f"{file}: no such file") from None
    except Exception as exc:
        raise DataError(f"{file}: cannot read as netCDF ({' '.join(str(exc).split())[:160]})") from None
    names = [str(v) for v in fc.data_vars]
    if not names:
        raise DataError(f"{file}: no data variables")
    var = var or names[0]
    if var not in fc:
        raise UsageError(f"`var` {var}: not in {file} (it has {', '.join(names)})")
    if "lead_time" not in fc[var].dims:
        raise DataError(f"{file}: '{var}' has no lead_time dimension; is it a svqcast forecast?")
    return fc, var


def pick_init(fc: Any, var: str, init_time: str | None, file: Any) -> tuple[int, list[str]]:
    """Index of the initialisation to plot, and a note when the file holds several.

    A multi-initialisation file used to be plotted (and scored) at its first time without a
    word; now the choice is explicit (`--init-time`) or reported.
    """
    import pandas as pd

    if "time" not in fc[var].dims or "time" not in fc.coords:
        if init_time is not None:
            raise UsageError(f"`init_time`: {file} has a single unnamed initialisation; drop `init_time`")
        return 0, []
    times = np.asarray(fc["time"].values).astype("datetime64[ns]")
    span = f"{str(times[0])[:16]} .. {str(times[-1])[:16]}"
    if init_time is None:
        notes = [] if times.size == 1 else [
            f"{file} holds {times.size} initialisations ({span}); plotting the first, "
            "choose another with `init_time`"]
        return 0, notes
    try:
        wanted = pd.Timestamp(init_time).to_datetime64().astype("datetime64[ns]")
    except (ValueError, TypeError):
        raise UsageError(f"`init_time`: cannot parse '{init_time}' (e.g. 2019-03-29T00:00)") from None
    hits = np.flatnonzero(times == wanted)
    if hits.size == 0:
        raise UsageError(f"`init_time` {init_time}: not in {file} (it holds {times.size} from {span})")
    return int(hits[0]), []


def _frames(fc: Any, var: str, init_index: int) -> _Frames:
    da = fc[var]
    if "time" in da.dims:
        da = da.isel(time=init_index)
    values = np.asarray(da.transpose("lead_time", ...).values, dtype=np.float64)  # (L, H, W)
    lat_name = "lat" if "lat" in fc.coords else ("y" if "y" in fc.coords else None)
    lon_name = "lon" if "lon" in fc.coords else ("x" if "x" in fc.coords else None)
    init = fc["time"].values[init_index] if "time" in fc.coords and fc["time"].ndim == 1 else None
    hours = _hours(np.asarray(fc["lead_time"].values))
    return _Frames(
        var=var, units=da.attrs.get("units", ""), values=values, hours=hours,
        xs=fc[lon_name].values if lon_name else np.arange(values.shape[2]),
        ys=fc[lat_name].values if lat_name else np.arange(values.shape[1]),
        geographic=lat_name == "lat", title_time=f" from {str(init)[:16]}" if init is not None else "",
        weights=_lat_weights(fc, values.shape[1:]), mask=np.ones(hours.size, dtype=bool),
    )


def _attach_truth(data: _Frames, fc: Any, truth: Path, file: Any, init_index: int) -> None:
    if "valid_time" not in fc.coords:
        raise DataError(f"{file}: no valid_time coordinate; cannot match truth in time")
    valid = np.asarray(fc["valid_time"].values)
    valid = valid[init_index] if valid.ndim == 2 else valid
    t_frames, data.mask = _truth_frames(truth, fc, data.var, valid)
    data.truth = np.full_like(data.values, np.nan)
    data.truth[data.mask] = t_frames


def _scores(data: _Frames) -> list[dict[str, Any]]:
    if data.truth is None:
        return []
    w, rows = data.weights, []
    for i in np.flatnonzero(data.mask):
        err = data.values[i] - data.truth[i]
        rows.append({
            "lead_time": _fmt_lead(data.hours[i]),
            "mae": float(np.sum(w * np.abs(err)) / w.sum()),
            "rmse": float(math.sqrt(np.sum(w * err**2) / w.sum())),
            "bias": float(np.sum(w * err) / w.sum()),
        })
    return rows


def _panels(plt: Any, data: _Frames, axes_row: Sequence[Any], i: int) -> None:
    """Forecast map (and truth and error maps) of lead `i` on one row of axes."""
    values, truth, mask = data.values, data.truth, data.mask
    both = values if truth is None else np.concatenate([values, truth[mask]])
    vmin, vmax = float(np.nanmin(both)), float(np.nanmax(both))
    lead = _fmt_lead(data.hours[i])

    def _map(ax: Any, field_: np.ndarray, lo: float, hi: float, cmap: str) -> None:
        im = ax.pcolormesh(data.xs, data.ys, field_, shading="nearest", vmin=lo, vmax=hi, cmap=cmap)
        plt.colorbar(im, ax=ax, label=data.units, shrink=0.85)

    _map(axes_row[0], values[i], vmin, vmax, "RdYlBu_r")
    axes_row[0].set_title(f"forecast +{lead}", fontsize=9)
    if truth is not None:
        if mask[i]:
            emax = float(np.nanmax(np.abs(values[mask] - truth[mask])))
            _map(axes_row[1], truth[i], vmin, vmax, "RdYlBu_r")
            _map(axes_row[2], values[i] - truth[i], -emax, emax, "RdBu_r")
        axes_row[1].set_title(f"truth +{lead}", fontsize=9)
        axes_row[2].set_title("error (forecast - truth)", fontsize=9)
    aspect = 1.0 / max(math.cos(math.radians(float(np.mean(data.ys)))), 0.2) if data.geographic else "equal"
    for ax in axes_row:
        ax.set_aspect(aspect)
        ax.tick_params(labelsize=7)


def _error_curve(ax: Any, data: _Frames, scores: list[dict[str, Any]]) -> None:
    if scores:
        h = [float(s["lead_time"][:-1]) for s in scores]
        ax.plot(h, [s["mae"] for s in scores], "o-", label="MAE", ms=3)
        ax.plot(h, [s["rmse"] for s in scores], "s-", label="RMSE", ms=3)
        ax.set_ylabel(f"error ({data.units})")
        ax.set_title("latitude-weighted error vs lead time" if data.geographic else "error vs lead time", fontsize=9)
    else:
        w, values = data.weights, data.values
        ax.plot(data.hours, np.sum(w * values, axis=(1, 2)) / w.sum(), "o-", ms=3, label="domain mean")
        ax.fill_between(data.hours, values.min(axis=(1, 2)), values.max(axis=(1, 2)), alpha=0.2, label="min..max")
        ax.set_ylabel(data.units)
        ax.set_title("forecast domain mean vs lead time", fontsize=9)
    ax.set_xlabel("lead time (h)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def _write_figure(plt: Any, data: _Frames, sel: list[int], scores: list[dict[str, Any]],
                  output: Path, model: str, overwrite: bool) -> None:
    cols = 3 if data.truth is not None else 1
    rows = len(sel) + 1
    fig = plt.figure(figsize=(3.6 * cols + 0.6, 2.6 * rows + 0.4), constrained_layout=True)
    try:
        grid = fig.add_gridspec(rows, cols)
        for r, i in enumerate(sel):
            _panels(plt, data, [fig.add_subplot(grid[r, c]) for c in range(cols)], i)
        _error_curve(fig.add_subplot(grid[rows - 1, :]), data, scores)
        fig.suptitle(f"{data.var}{data.title_time} ({model})", fontsize=10)
        fmt = output.suffix.lstrip(".").lower() or "png"
        with atomic_path(output, overwrite=overwrite) as tmp:
            fig.savefig(tmp, format=fmt, dpi=90)
    finally:
        plt.close(fig)


def _write_animation(plt: Any, data: _Frames, target: Path, overwrite: bool) -> None:
    from matplotlib.animation import FuncAnimation, PillowWriter

    cols = 3 if data.truth is not None else 1
    fig = plt.figure(figsize=(3.6 * cols + 0.6, 3.0), constrained_layout=True)

    def _frame(i: int) -> list[Any]:
        fig.clear()
        g = fig.add_gridspec(1, cols)
        _panels(plt, data, [fig.add_subplot(g[0, c]) for c in range(cols)], i)
        fig.suptitle(f"{data.var}{data.title_time}", fontsize=9)
        return []

    try:
        anim = FuncAnimation(fig, _frame, frames=range(data.values.shape[0]), blit=False)
        # Pillow picks the format from the extension, so the temp file keeps ".gif"
        with atomic_path(target, overwrite=overwrite, suffix=".tmp.gif") as tmp:
            anim.save(str(tmp), writer=PillowWriter(fps=3))
    finally:
        plt.close(fig)


def plot_forecast(
    file: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    truth: str | os.PathLike[str] | None = None,
    var: str | None = None,
    lead_times: Sequence[str] | None = None,
    animate: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    init_time: str | None = None,
) -> dict[str, Any]:
    """Write the figure (and optional GIF); return per-lead scores when truth is given.

    `init_time` picks one initialisation of a multi-initialisation file (default: the first,
    with a note in the result's `notes`).
    """
    output = Path(output)
    anim_path = Path(animate) if animate is not None else None
    _check_targets(output, anim_path, overwrite, [file, truth])
    plt = _pyplot()
    fc, var = _open_forecast(file, var)
    try:
        init_index, notes = pick_init(fc, var, init_time, file)
        data = _frames(fc, var, init_index)
        if truth is not None:
            _attach_truth(data, fc, Path(truth), file, init_index)
        sel = _select_leads(data.hours, lead_times)
        scores = _scores(data)
        _write_figure(plt, data, sel, scores, output, str(fc.attrs.get("svqcast_model", "")), overwrite)
        result: dict[str, Any] = {"figure": str(output), "variable": var, "units": data.units, "scores": scores,
                                  "lead_times_mapped": [_fmt_lead(data.hours[i]) for i in sel], "notes": notes}
        if anim_path is not None:
            _write_animation(plt, data, anim_path, overwrite)
            result["animation"] = str(anim_path)
    finally:
        fc.close()
    return result
