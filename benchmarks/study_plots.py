"""The study's plots (docs/img/study_*.png), from the JSON only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from study_design import ABLATION_DATASET, ABLATION_SIZES, DATASETS, MAIN_MODELS
from study_stats import summarize
from study_summary import REFERENCES, ablation_table, display_unit, metric_values, ok_runs


def _ok_datasets(data: Mapping[str, Any]) -> list[str]:
    return [d for d in DATASETS if any(r.get("status") == "ok" and r["dataset"] == d for r in data.get("runs", []))]


def _plot_main(plt: Any, data: Mapping[str, Any], datasets: Sequence[str], path: Path) -> None:
    """Test RMSE per seed (grey) and mean ± std (blue) per model; references as lines."""
    labels, units = data.get("settings", {}).get("model_labels", {}), data.get("units", {})
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4), squeeze=False)
    for ax, ds in zip(axes[0], datasets, strict=True):
        keys = [m.key for m in MAIN_MODELS if ok_runs(data, ds, m.key)]
        for i, key in enumerate(keys):
            vals = metric_values(data, ds, key, "rmse")
            s = summarize(vals)
            ax.scatter([i] * len(vals), vals, s=14, color="0.5", zorder=3)
            ax.errorbar([i], [s["mean"]], yerr=[s["std"] or 0.0], fmt="o", color="C0", capsize=5, zorder=4)
        for j, name in enumerate(REFERENCES):
            ref = (data.get("references", {}).get(ds, {}).get(name) or {}).get("rmse")
            if ref is not None:
                ax.axhline(ref, linestyle=("--", ":", "-.", ":")[j], color=f"C{j + 1}", label=name)
        ax.set_xticks(range(len(keys)), [labels.get(k, k) for k in keys], rotation=30, ha="right")
        ax.set_ylabel(f"test RMSE ({display_unit(units.get(ds)) or 'counts'})")
        ax.set_title(ds)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_curves(plt: Any, data: Mapping[str, Any], datasets: Sequence[str], path: Path) -> None:
    """Every main run's validation loss per epoch, one colour per model; x marks the best epoch."""
    labels = data.get("settings", {}).get("model_labels", {})
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 3.8), squeeze=False)
    for ax, ds in zip(axes[0], datasets, strict=True):
        for j, m in enumerate(MAIN_MODELS):
            for k, r in enumerate(ok_runs(data, ds, m.key)):
                curve = r.get("val_loss") or []
                epochs = list(range(1, len(curve) + 1))
                ax.plot(epochs, curve, color=f"C{j}", alpha=0.7, label=labels.get(m.key, m.key) if k == 0 else None)
                if r.get("best_epoch"):
                    ax.plot([r["best_epoch"]], [curve[r["best_epoch"] - 1]], "x", color=f"C{j}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation loss (normalised units)")
        ax.set_yscale("log")
        ax.set_title(ds)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_ablation(plt: Any, data: Mapping[str, Any], abl: Mapping[int, Mapping[str, Any]], path: Path) -> None:
    units = data.get("units", {})
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for j, kind in enumerate(("learnable", "frozen")):
        ns = [n for n in ABLATION_SIZES if abl[n].get(kind) and abl[n][kind]["mean"] is not None]
        if ns:
            shift = 0.92 if kind == "learnable" else 1.08  # side by side, not on top of each other
            ax.errorbar([n * shift for n in ns], [abl[n][kind]["mean"] for n in ns],
                        yerr=[abl[n][kind]["std"] or 0.0 for n in ns], marker="o", capsize=4, label=kind,
                        color=f"C{j}")
    base = summarize(metric_values(data, ABLATION_DATASET, "simvp-mae", "rmse"))
    if base["mean"] is not None:
        ax.axhline(base["mean"], linestyle="--", color="0.4", label="SimVP (MAE)")
    ax.set_xscale("log")
    ax.set_xlabel("codebook size N")
    ax.set_ylabel(f"test RMSE ({display_unit(units.get(ABLATION_DATASET)) or 'counts'})")
    ax.set_title(f"SVQ codebook size, {ABLATION_DATASET}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def make_plots(data: Mapping[str, Any], img_dir: Path) -> list[Path]:
    """The main scores, the validation curves and the ablation, as PNGs in `img_dir`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    datasets = _ok_datasets(data)
    if datasets:
        for name, plot in (("study_main.png", _plot_main), ("study_curves.png", _plot_curves)):
            plot(plt, data, datasets, img_dir / name)
            written.append(img_dir / name)
    abl = ablation_table(data)
    if any(v for row in abl.values() for v in row.values()):
        _plot_ablation(plt, data, abl, img_dir / "study_ablation.png")
        written.append(img_dir / "study_ablation.png")
    return written
