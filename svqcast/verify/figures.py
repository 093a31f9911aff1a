"""What every svqcast figure shares: headless matplotlib (the optional `plot` extra), the figure
formats a target may have, and the scores-against-lead figure of `svqcast score --plot`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from svqcast.errors import MissingExtraError, UsageError
from svqcast.fsutil import atomic_path, check_output

FIGURE_FORMATS = ("png", "pdf", "svg", "svgz", "jpg", "jpeg", "eps", "ps", "tif", "tiff", "webp")



def pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise MissingExtraError("svqcast plot", "plot", "matplotlib") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def check_plot_target(path: str | os.PathLike[str], *, overwrite: bool, inputs: Sequence[Any] = ()) -> None:
    """Refuse a bad --plot figure before scoring: its format, and the rules of check_output."""
    suffix = Path(path).suffix.lstrip(".").lower()
    if suffix not in FIGURE_FORMATS:
        raise UsageError(f"`plot` {path}: unknown figure format '.{suffix}'; use .png, .pdf or .svg")
    check_output(path, overwrite=overwrite, inputs=inputs)


def plot_scores(result: dict[str, Any], path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
    """RMSE against lead time, forecast and persistence, one panel per variable."""
    plt = pyplot()
    names = list(result["variables"])
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.5), squeeze=False)
    for ax, var in zip(axes[0], names, strict=True):
        v = result["variables"][var]
        for label, table, style in (("forecast", v, "-o"), ("persistence", v["references"]["persistence"], "--s")):
            rows = [r for r in table["per_lead"] if r["rmse"] is not None]
            xs = [r["lead_steps"] if r["lead_time_seconds"] is None else r["lead_time_seconds"] / 3600 for r in rows]
            ax.plot(xs, [r["rmse"] for r in rows], style, label=label, markersize=3)
        ax.set_xlabel("lead time (h)" if v["per_lead"][0]["lead_time_seconds"] is not None else "lead (steps)")
        ax.set_ylabel(f"RMSE ({v['units'] or '-'})")
        ax.set_title(var)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fmt = Path(path).suffix.lstrip(".").lower()
    try:
        with atomic_path(path, overwrite=overwrite) as tmp:
            fig.savefig(tmp, format=fmt, dpi=120)
    finally:
        plt.close(fig)
