"""The study's statistics: mean, sample std, Welch's t-test (Student-t tail from scipy.stats)
and the verdict rule built on it."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

ALPHA = 0.05  # significance level of the Welch test used in the verdicts


def summarize(values: Iterable[float]) -> dict[str, Any]:
    """n, mean, sample standard deviation (ddof = 1; None for a single value), min, max."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(xs)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None}
    mean = math.fsum(xs) / n
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else None
    return {"n": n, "mean": mean, "std": std, "min": min(xs), "max": max(xs)}


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with `df` (possibly fractional) degrees of freedom."""
    from scipy import stats

    if math.isnan(t) or df <= 0:
        return float("nan")
    return float(2.0 * stats.t.sf(abs(t), df))


def welch(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Welch's unequal-variance t-test of mean(a) - mean(b).

    Returns diff, t, df (Welch-Satterthwaite), two-sided p and the combined standard deviation
    sqrt(s_a^2 + s_b^2) used in the "within noise" rule. With fewer than two values on a side
    no test is possible and p is None.
    """
    sa, sb = summarize(a), summarize(b)
    out: dict[str, Any] = {"n_a": sa["n"], "n_b": sb["n"], "diff": None, "t": None, "df": None,
                           "p": None, "combined_std": None}
    if sa["n"] == 0 or sb["n"] == 0:
        return out
    out["diff"] = sa["mean"] - sb["mean"]
    if sa["n"] < 2 or sb["n"] < 2:
        return out
    va, vb = sa["std"] ** 2 / sa["n"], sb["std"] ** 2 / sb["n"]
    out["combined_std"] = math.sqrt(sa["std"] ** 2 + sb["std"] ** 2)
    se2 = va + vb
    if se2 == 0.0:
        out["t"] = 0.0 if out["diff"] == 0 else math.copysign(math.inf, out["diff"])
        out["df"] = float(sa["n"] + sb["n"] - 2)
        out["p"] = 1.0 if out["diff"] == 0 else 0.0
        return out
    out["t"] = out["diff"] / math.sqrt(se2)
    out["df"] = se2 ** 2 / ((va ** 2 / (sa["n"] - 1) if va else 0.0) + (vb ** 2 / (sb["n"] - 1) if vb else 0.0))
    out["p"] = t_two_sided_p(out["t"], out["df"])
    return out


def verdict(a: Sequence[float], b: Sequence[float], alpha: float = ALPHA) -> dict[str, Any]:
    """Is `a` (lower is better) better than `b`, worse, or not distinguishable from it?

    "better"/"worse" needs BOTH a Welch p < alpha AND |diff| larger than the combined std of the
    two groups; anything else is "within noise" (or "not enough seeds" with < 2 per side). Two
    criteria rather than one because with 3 seeds a t-test alone is easily fooled by a lucky
    small spread.
    """
    w = welch(a, b)
    if w["p"] is None:
        w["verdict"] = "not enough seeds"
    elif w["p"] < alpha and abs(w["diff"]) > w["combined_std"]:
        w["verdict"] = "better" if w["diff"] < 0 else "worse"
    else:
        w["verdict"] = "within noise"
    return w
