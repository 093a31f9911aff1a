"""The study's numbers, read from the JSON only: per-model summaries, convergence, the pairwise
comparisons, the ablation table, the runs' cost, and how numbers are written in the report."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from study_design import ABLATION_DATASET, ABLATION_SIZES
from study_stats import summarize, verdict

METRICS = (("mae", "MAE"), ("rmse", "RMSE"), ("lat_rmse", "lat-weighted RMSE"))
#: reference forecasts in the order the report lists them (the seasonal one where defined)
REFERENCES = ("persistence", "same_hour_yesterday", "same_time_last_week", "climatology")


def fmt(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    # `g` would write 1007 as 1.01e+03 at 3 digits: whole numbers that need more digits stay whole
    return f"{x:.{digits}g}" if abs(x) < 10 ** digits - 0.5 else f"{x:.0f}"


def fmt_pm(s: Mapping[str, Any], digits: int = 4) -> str:
    if not s or s.get("mean") is None:
        return "–"
    if s.get("std") is None:
        return f"{fmt(s['mean'], digits)} (n=1)"
    return f"{fmt(s['mean'], digits)} ± {fmt(s['std'], 2)}"


def ok_runs(data: Mapping[str, Any], dataset: str, model: str) -> list[Mapping[str, Any]]:
    return [r for r in data.get("runs", []) if r.get("status") == "ok"
            and r["dataset"] == dataset and r["model"] == model]


def metric_values(data: Mapping[str, Any], dataset: str, model: str, metric: str) -> list[float]:
    return [r["test"][metric] for r in ok_runs(data, dataset, model) if r["test"].get(metric) is not None]


def converged(data: Mapping[str, Any], dataset: str, model: str) -> bool | None:
    """Did the model learn its task? Its seed-mean test MAE and RMSE must both be below the
    training climatology's (None when either is unknown). A model that does not beat
    climatology is flagged as not converged and left out of the comparisons."""
    clim = (data.get("references", {}).get(dataset) or {}).get("climatology") or {}
    out = []
    for metric in ("mae", "rmse"):
        mean = summarize(metric_values(data, dataset, model, metric))["mean"]
        if mean is None or clim.get(metric) is None:
            return None
        out.append(mean < clim[metric])
    return all(out)


def aggregate(data: Mapping[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """dataset -> model -> {metric: summary, epochs, best_val, stops, converged, n, seeds}."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    models = {r["model"] for r in data.get("runs", [])}
    for ds in sorted({r["dataset"] for r in data.get("runs", [])}):
        for model in sorted(models):
            runs = ok_runs(data, ds, model)
            if not runs:
                continue
            row = {m: summarize(metric_values(data, ds, model, m)) for m, _ in METRICS}
            row["epochs_run"] = summarize(r["epochs_run"] for r in runs)
            row["best_val"] = summarize(r["best_val"] for r in runs)
            row["train_seconds"] = summarize(r["train_seconds"] for r in runs)
            row["early_stops"] = sum(r.get("stop_reason") == "early_stopping" for r in runs)
            row["converged"] = converged(data, ds, model)
            row["n"] = len(runs)
            row["seeds"] = sorted(r["seed"] for r in runs)
            row["best_epochs"] = [r.get("best_epoch") for r in sorted(runs, key=lambda r: r["seed"])]
            out.setdefault(ds, {})[model] = row
    return out


PAIRS = (
    ("svq-learnable", "simvp-mae", "SVQ (learnable) vs SimVP, both with the MAE loss"),
    ("svq-frozen", "simvp-mae", "SVQ (frozen) vs SimVP, both with the MAE loss"),
    ("svq-learnable", "simvp-mse", "SVQ (learnable, MAE) vs the paper's SimVP baseline (MSE)"),
    ("svq-frozen", "svq-learnable", "frozen vs learnable codebook"),
    ("vq", "simvp-mse", "VQ vs SimVP, both with the MSE loss"),
    ("svq-learnable", "vq", "SVQ (learnable) vs VQ"),
)


def comparisons(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The questions the study asks, each answered with a verdict per dataset and metric;
    a pair with a model that did not converge is not compared."""
    out = []
    for ds in sorted({r["dataset"] for r in data.get("runs", [])}):
        for a, b, question in PAIRS:
            if converged(data, ds, a) is False or converged(data, ds, b) is False:
                continue
            for metric in ("rmse", "mae"):
                va, vb = metric_values(data, ds, a, metric), metric_values(data, ds, b, metric)
                if not va or not vb:
                    continue
                res = verdict(va, vb)
                mb = summarize(vb)["mean"]
                res.update({"dataset": ds, "a": a, "b": b, "question": question, "metric": metric,
                            "rel_diff": res["diff"] / mb if mb else None})
                out.append(res)
    return out


def display_unit(unit: str | None) -> str:
    """Units as a reader expects them: the flow datasets' dimensionless "1" means counts."""
    return "" if unit in (None, "", "1") else unit


def ablation_key(kind: str, n: int) -> str:
    return f"svq-{kind}" if n == 10000 else f"svq-{kind}-n{n}"


def ablation_table(data: Mapping[str, Any], metric: str = "rmse") -> dict[int, dict[str, dict[str, Any]]]:
    table: dict[int, dict[str, dict[str, Any]]] = {}
    for n in ABLATION_SIZES:
        row = {}
        for kind in ("learnable", "frozen"):
            vals = metric_values(data, ABLATION_DATASET, ablation_key(kind, n), metric)
            row[kind] = summarize(vals) if vals else {}
        table[n] = row
    return table


def run_cost_hours(runs: Iterable[Mapping[str, Any]], jobs: int) -> float:
    """Machine hours of a set of runs: their wall time (train + evaluation, each measured while
    another run shared the machine) divided by the runs at a time. For the finished study this
    is what `make study` from scratch costs on this machine."""
    secs = math.fsum(run_seconds(r) for r in runs if r.get("status") == "ok")
    return secs / 3600 / max(1, jobs)


def run_seconds(record: Mapping[str, Any]) -> float:
    """Wall time of one run: training plus evaluation."""
    return record.get("train_seconds", 0.0) + record.get("eval_seconds", 0.0)


def rerun_agreement(data: Mapping[str, Any]) -> tuple[int, int]:
    """(redone runs whose validation curve and test scores equal the superseded run's exactly,
    redone runs with a superseded record)."""
    current = {r["run_id"]: r for r in data.get("runs", [])}
    same = total = 0
    for old in data.get("superseded", []):
        new = current.get(old["run_id"])
        if new is None:
            continue
        total += 1
        same += new.get("val_loss") == old.get("val_loss") and new.get("test") == old.get("test")
    return same, total


def against_seed_range(values: Sequence[float], ref: Sequence[float]) -> str:
    """How an ablation size compares with the three N = 10000 seeds of the same codebook kind.

    With two or more seeds per side the verdict rule applies. With one seed there is no test;
    the conservative reading is whether the value lies outside the whole range of the reference
    seeds (a difference smaller than the seed-to-seed spread is not read as an effect of N).
    """
    if not values or not ref:
        return "–"
    if len(values) >= 2 and len(ref) >= 2:
        return verdict(values, ref)["verdict"]
    x, lo, hi = float(values[0]), min(ref), max(ref)
    if lo <= x <= hi:
        return "inside its seed range"
    return f"{'below' if x < lo else 'above'} its seed range ({(x - hi if x > hi else x - lo):+.3g})"
