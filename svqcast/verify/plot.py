"""Figures of a forecast file: maps per lead time (forecast, truth, error) and error vs lead.

matplotlib is the optional extra `plot`; it runs headless (Agg backend). Truth is any
netCDF/zarr holding the variable at the forecast's valid times; it is read through the same
validation as `svqcast predict` input (aliases, grid orientation and cut-outs, units), so
an observation file in degC with descending latitudes compares correctly with a K forecast.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from svqcast.errors import UsageError
from svqcast.fsutil import DEVNULL, atomic_path, check_input, check_output
from svqcast.sources.forecast_files import ForecastView, open_forecast
from svqcast.sources.leadtime import format_hours as _fmt_lead
from svqcast.sources.leadtime import parse_duration
from svqcast.verify.ensemble_metrics import rank_counts, truth_ranks
from svqcast.verify.figures import FIGURE_FORMATS, pyplot
from svqcast.verify.metrics import weighted_mean
from svqcast.verify.scoring import area_weights, init_scores


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


def _select_leads(hours: np.ndarray, wanted: Sequence[str] | None) -> list[int]:
    if wanted:
        out = []
        for w in wanted:
            h = parse_duration(w).total_seconds() / 3600.0
            idx = np.flatnonzero(np.isclose(hours, h))
            if idx.size == 0:
                have = f"{_fmt_lead(hours[0])}..{_fmt_lead(hours[-1])}"
                raise UsageError(f"`lead_time` {w}: not in the file (it has {have})")
            out.append(int(idx[0]))
        return out
    n = hours.size
    k = min(4, n)
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, k)}) if n > 1 else [0]


@dataclass
class _Frames:
    """What the figure shows: forecast (L, H, W), optional truth on the same grid, axes."""

    var: str
    units: str
    values: np.ndarray
    hours: np.ndarray  # lead in hours, or in steps for calendar and frame steps
    xs: np.ndarray
    ys: np.ndarray
    geographic: bool
    title_time: str
    weights: np.ndarray
    truth: np.ndarray | None = None
    mask: np.ndarray = field(default_factory=lambda: np.ones(0, dtype=bool))
    labels: list[str] = field(default_factory=list)  # each lead in its own unit ("6h", "3 months")
    axis_label: str = "lead time (h)"
    rgb: np.ndarray | None = None  # (L, H, W, 3) in [0, 1] when the file holds red, green and blue frames
    rows: list[dict[str, Any]] = field(default_factory=list)  # per-lead scores from svqcast.verify.scoring
    members: np.ndarray | None = None  # (L, M, H, W) for an ensemble: `values` is then its mean


def pick_init(fv: ForecastView, init_time: str | None, file: Any) -> tuple[int, list[str]]:
    """Index of the initialisation to plot, and a note when the file holds several.

    A multi-initialisation file used to be plotted (and scored) at its first time without a
    word; now the choice is explicit (`--init-time`) or reported.
    """
    import pandas as pd

    times = fv.inits
    span = f"{str(times[0])[:16]} .. {str(times[-1])[:16]}"
    if init_time is None:
        notes = [] if times.size == 1 else [
            f"{file} holds {times.size} initialisations ({span}); plotting the first, "
            "choose another with `init_time`"]
        return 0, notes
    if not fv.calendar:
        try:
            hits = np.flatnonzero(times == int(init_time))
        except ValueError:
            raise UsageError(f"`init_time`: {file} counts frames; give a frame index, not '{init_time}'") from None
    else:
        try:
            wanted = pd.Timestamp(init_time).to_datetime64().astype("datetime64[ns]")
        except (ValueError, TypeError):
            raise UsageError(f"`init_time`: cannot parse '{init_time}' (e.g. 2019-03-29T00:00)") from None
        hits = np.flatnonzero(times == wanted)
    if hits.size == 0:
        raise UsageError(f"`init_time` {init_time}: not in {file} (it holds {times.size} from {span})")
    return int(hits[0]), []


def _frames(fv: ForecastView, var: str, init_index: int) -> _Frames:
    values = np.asarray(fv.data[var][init_index].values, dtype=np.float64)  # (L, H, W), any layout
    members = None
    if values.ndim == 4:  # an ensemble (L, M, H, W): its mean is mapped, its spread beside it
        members, values = values, values.mean(axis=1)
    hours = _hours(fv.leads)
    init = fv.inits[init_index]
    return _Frames(
        var=var, units=fv.units(var) or "", values=values, hours=hours, xs=fv.x, ys=fv.y, geographic=fv.latlon,
        title_time=f" from {str(init)[:16]}" if fv.calendar else f" from frame {int(init)}",
        weights=area_weights(fv), mask=np.ones(hours.size, dtype=bool), labels=fv.lead_labels(),
        axis_label="lead time (h)" if fv.step_unit is None else f"lead time ({fv.step_unit[1]})", members=members,
    )


def _attach_truth(data: _Frames, fv: ForecastView, truth: Path, init_index: int, notes: list[str],
                  coords: Mapping[str, str] | None) -> None:
    """Truth on the forecast grid, and the per-lead scores `svqcast score` gives this initialisation."""
    data.truth, data.mask, rows = init_scores(fv, data.var, truth, init_index, notes, coords)
    data.rows = rows
    missing = [data.labels[i] for i in np.flatnonzero(~data.mask)]
    if missing:  # the panels of these leads stay empty: say so
        notes.append(f"{truth} has no truth for lead(s) {', '.join(missing)}; their truth and error panels are empty")


def _scores(data: _Frames) -> list[dict[str, Any]]:
    """Per-lead scores of the leads with truth (the rows of `svqcast score`, same weights)."""
    if data.truth is None:
        return []
    return [{"lead_time": data.labels[i], "mae": data.rows[i]["mae"], "rmse": data.rows[i]["rmse"],
             "bias": data.rows[i]["bias"]} for i in np.flatnonzero(data.mask)]


def _panels(plt: Any, data: _Frames, axes_row: Sequence[Any], i: int) -> None:
    """Forecast map (and truth and error maps) of lead `i` on one row of axes."""
    values, truth, mask = data.values, data.truth, data.mask
    both = values if truth is None else np.concatenate([values, truth[mask]])
    vmin, vmax = float(np.nanmin(both)), float(np.nanmax(both))
    lead = data.labels[i]

    def _map(ax: Any, field_: np.ndarray, lo: float, hi: float, cmap: str) -> None:
        im = ax.pcolormesh(data.xs, data.ys, field_, shading="nearest", vmin=lo, vmax=hi, cmap=cmap)
        plt.colorbar(im, ax=ax, label=data.units, shrink=0.85)

    if data.rgb is not None:  # colour frames as colour, row 0 at the top
        axes_row[0].imshow(np.clip(data.rgb[i], 0.0, 1.0), origin="upper", interpolation="nearest")
    else:
        _map(axes_row[0], values[i], vmin, vmax, "RdYlBu_r")
    axes_row[0].set_title(f"{'ensemble mean' if data.members is not None else 'forecast'} +{lead}", fontsize=9)
    if data.members is not None:  # the spread (member standard deviation) in the last column
        spread = data.members.std(axis=1, ddof=1)
        _map(axes_row[-1], spread[i], 0.0, float(np.nanmax(spread)) or 1.0, "viridis")
        axes_row[-1].set_title(f"spread (member std) +{lead}", fontsize=9)
    if truth is not None:
        if mask[i]:
            emax = float(np.nanmax(np.abs(values[mask] - truth[mask])))
            _map(axes_row[1], truth[i], vmin, vmax, "RdYlBu_r")
            _map(axes_row[2], values[i] - truth[i], -emax, emax, "RdBu_r")
        axes_row[1].set_title(f"truth +{lead}", fontsize=9)
        axes_row[2].set_title("error (forecast - truth)", fontsize=9)
    for ax in axes_row:
        _frame_axes(ax, data)


def _frame_axes(ax: Any, data: _Frames) -> None:
    """Equal-area aspect (a degree of longitude is cos(lat) of one of latitude), degrees on
    geographic axes, pixel rows counted from the top for images and other y/x grids."""
    from matplotlib.ticker import FuncFormatter

    if data.geographic:
        ax.set_aspect(1.0 / max(math.cos(math.radians(float(np.mean(data.ys)))), 0.2))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{abs(v):g}°{'E' if v >= 0 else 'W'}"))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{abs(v):g}°{'N' if v >= 0 else 'S'}"))
    else:
        ax.set_aspect("equal")
        if data.rgb is None and not ax.yaxis_inverted():
            ax.invert_yaxis()
    ax.tick_params(labelsize=7)


def _panel_size(data: _Frames) -> tuple[float, float]:
    """(width, height) in inches of one map panel: the grid's own shape, so a 18 x 432 strip is a
    long thin panel and a tall grid a tall one, within a readable range."""
    h, w = data.values.shape[1:3]
    ratio = w / max(h, 1)
    if data.geographic:
        ratio *= math.cos(math.radians(float(np.mean(data.ys))))
    width = float(np.clip(3.2 * math.sqrt(ratio), 2.4, 11.0))
    return width, float(np.clip(width / max(ratio, 1e-6), 1.0, 7.0)) + 0.5


def _error_curve(ax: Any, data: _Frames, scores: list[dict[str, Any]]) -> None:
    if scores:
        h = [float(data.hours[i]) for i in np.flatnonzero(data.mask)]
        ax.plot(h, [s["mae"] for s in scores], "o-", label="MAE", ms=3)
        ax.plot(h, [s["rmse"] for s in scores], "s-", label="RMSE", ms=3)
        ax.set_ylabel(f"error ({data.units})")
        ax.set_title("latitude-weighted error vs lead time" if data.geographic else "error vs lead time", fontsize=9)
    else:
        w, values = data.weights, data.values
        ax.plot(data.hours, weighted_mean(values, w), "o-", ms=3, label="domain mean")
        ax.fill_between(data.hours, values.min(axis=(1, 2)), values.max(axis=(1, 2)), alpha=0.2, label="min..max")
        ax.set_ylabel(data.units)
        ax.set_title("forecast domain mean vs lead time", fontsize=9)
    ax.set_xlabel(data.axis_label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def _rank_histogram(ax: Any, data: _Frames) -> None:
    """Where the truth falls among the members, over every mapped cell and lead: flat for a
    calibrated ensemble, U-shaped for an under-dispersed one."""
    assert data.members is not None and data.truth is not None
    m = data.members.shape[1]
    ranks = truth_ranks(np.moveaxis(data.members[data.mask], 1, 0), data.truth[data.mask], np.random.default_rng(0))
    counts = rank_counts(ranks, m)
    ax.bar(np.arange(m + 1), counts / max(counts.sum(), 1), color="tab:blue")
    ax.axhline(1.0 / (m + 1), color="k", lw=0.8, ls="--", label="calibrated")
    ax.set_xlabel("rank of the truth among the members")
    ax.set_title("rank histogram", fontsize=9)
    ax.legend(fontsize=8)


def _write_figure(plt: Any, data: _Frames, sel: list[int], scores: list[dict[str, Any]],
                  output: Path, model: str, overwrite: bool) -> None:
    cols = (3 if data.truth is not None else 1) + (1 if data.members is not None else 0)
    rows = len(sel) + 1
    pw, ph = _panel_size(data)
    fig = plt.figure(figsize=(pw * cols + 1.0, ph * len(sel) + 3.0), constrained_layout=True)
    try:
        grid = fig.add_gridspec(rows, cols, height_ratios=[ph] * len(sel) + [2.6])
        for r, i in enumerate(sel):
            _panels(plt, data, [fig.add_subplot(grid[r, c]) for c in range(cols)], i)
        if data.members is not None and data.truth is not None:
            _error_curve(fig.add_subplot(grid[rows - 1, : cols - 1]), data, scores)
            _rank_histogram(fig.add_subplot(grid[rows - 1, cols - 1]), data)
        else:
            _error_curve(fig.add_subplot(grid[rows - 1, :]), data, scores)
        name = "colour frames" if data.rgb is not None else data.var
        fig.suptitle(f"{name}{data.title_time}" + (f" ({model})" if model else ""), fontsize=10)
        fmt = output.suffix.lstrip(".").lower() or "png"
        with atomic_path(output, overwrite=overwrite) as tmp:
            fig.savefig(tmp, format=fmt, dpi=90)
    finally:
        plt.close(fig)


def _write_animation(plt: Any, data: _Frames, target: Path, overwrite: bool) -> None:
    from matplotlib.animation import FuncAnimation, PillowWriter

    cols = (3 if data.truth is not None else 1) + (1 if data.members is not None else 0)
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
    coords: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Write the figure (and optional GIF); return per-lead scores when truth is given.

    `init_time` picks one initialisation of a multi-initialisation file (default: the first,
    with a note in the result's `notes`). `coords` ({role: name}) names coordinates of the
    forecast or truth file that the guesser would miss.
    """
    output = Path(output)
    anim_path = Path(animate) if animate is not None else None
    _check_targets(output, anim_path, overwrite, [file, truth])
    plt = pyplot()
    fv = open_forecast(file, [var] if var else None, coords, strict=truth is None)
    var = var or next(iter(fv.data))
    init_index, notes = pick_init(fv, init_time, file)
    notes = list(fv.notes) + notes
    try:
        data = _frames(fv, var, init_index)
        if {"red", "green", "blue"} <= set(fv.data) and not fv.latlon:  # colour frames: shown in colour
            data.rgb = np.stack([np.asarray(fv.data[c][init_index].values, dtype=np.float64)
                                 for c in ("red", "green", "blue")], axis=-1)
        if truth is not None:
            _attach_truth(data, fv, Path(truth), init_index, notes, coords)
        sel = _select_leads(data.hours, lead_times)
        scores = _scores(data)
        _write_figure(plt, data, sel, scores, output, fv.model, overwrite)
        result: dict[str, Any] = {"figure": str(output), "variable": var, "units": data.units, "scores": scores,
                                  "lead_times_mapped": [data.labels[i] for i in sel], "notes": notes}
        if anim_path is not None:
            _write_animation(plt, data, anim_path, overwrite)
            result["animation"] = str(anim_path)
    finally:
        fv.close()
    return result
