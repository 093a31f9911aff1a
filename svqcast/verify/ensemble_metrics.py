"""Per-cell probabilistic scores of an ensemble forecast (CRPS, spread/skill, rank histogram, Brier).

Why this module exists: a deterministic model is judged by RMSE and MAE, but an ensemble (several
members per initialisation) is a sample of a predictive distribution, and what matters is whether
that distribution is sharp *and* calibrated. The functions here score one batch of fields per cell;
the caller averages the per-cell values over cells (with latitude weights) and initialisations,
exactly as it does for the deterministic scores. Everything is numpy float64 so that the numbers
do not depend on the accelerator that produced the forecast.

Conventions (checked against the ``scores`` package 2.7.0 by ``tests/test_ensemble_metrics.py``):

* **Shapes**: ``members`` has the ensemble on axis 0, ``(M, ...)`` (e.g. ``(M, lead, H, W)``), and
  ``truth`` has the remaining shape ``(...)``. Outputs have the shape of ``truth``.
* **Missing data**: a NaN in the truth or in *any* member makes that cell NaN (rank ``-1``). This is
  stricter than ``scores``, whose CRPS and Brier score silently drop NaN members and score the
  remaining smaller ensemble; a partly missing ensemble here is a data error, not a smaller ensemble,
  and mixing ensemble sizes would bias the fair scores. (``scores.rank_histogram`` agrees with us.)
* **Event** (Brier) = ``value >= threshold``, the default ``operator.ge`` of
  ``scores.probability.brier_score_for_ensemble`` and the event of :mod:`svqcast.verify.categorical`.
* **Ranks** are 0-based (``0..M``: the number of members below the truth); ``scores`` numbers them
  ``1..M+1``. Ties are broken at random, uniformly over the tied positions (see :func:`truth_ranks`).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: relative change below which the incomplete-gamma series / continued fraction have converged
_GAMMA_EPS = 1e-16
_GAMMA_MAX_TERMS = 100_000
_TINY = 1e-300  # keeps the Lentz recursion away from a division by zero


def _as_ensemble(members: npt.ArrayLike, truth: npt.ArrayLike) -> tuple[F64, F64, npt.NDArray[np.bool_]]:
    """Validate once and return (members, truth, invalid-cell mask) as float64.

    Shared by every score so that the shape rule and the "any NaN spoils the cell" rule are
    identical for CRPS, ranks and the Brier score.
    """
    x = np.asarray(members, dtype=np.float64)
    y = np.asarray(truth, dtype=np.float64)
    if x.ndim < 1 or x.shape[0] < 1:
        raise ValueError(f"members must have at least one member on axis 0, got shape {x.shape}")
    if x.shape[1:] != y.shape:
        raise ValueError(f"members shape {x.shape} must be (M,) + truth shape {y.shape}")
    invalid = np.isnan(y) | np.isnan(x).any(axis=0)
    return x, y, invalid


def _pairwise_abs_sum(x: F64) -> F64:
    """``sum_{i,j} |x_i - x_j|`` over axis 0, in O(M log M) per cell.

    Why the identity: once the members are sorted, ``x_(k)`` is larger than the ``k - 1`` members
    before it and smaller than the ``M - k`` after it, so in the double sum (which counts each pair
    twice) it enters with the weight ``2 * ((k - 1) - (M - k)) = 2 * (2k - M - 1)``. The members are
    centred first: the sum is shift invariant, and centring avoids cancelling large offsets.
    """
    m = x.shape[0]
    centred = x - x.mean(axis=0)
    ordered = np.sort(centred, axis=0)
    weights = 2.0 * np.arange(1, m + 1, dtype=np.float64) - m - 1.0
    weights = weights.reshape((m,) + (1,) * (x.ndim - 1))
    return np.asarray(2.0 * (weights * ordered).sum(axis=0), dtype=np.float64)


def crps_ensemble(members: npt.ArrayLike, truth: npt.ArrayLike, fair: bool = True) -> F64:
    """Per-cell CRPS of an ensemble: ``mean_i |x_i - y| - sum_{i,j} |x_i - x_j| / (2 K)``.

    ``fair=True`` uses ``K = M (M - 1)`` (Ferro 2014; WeatherBench 2's ``CRPS`` and ``scores``'
    ``method="fair"``): it is the unbiased estimate of the CRPS of the distribution the members
    were drawn from, so ensembles of different sizes can be compared. ``fair=False`` uses
    ``K = M**2`` (``scores``' ``method="ecdf"``): the exact CRPS of the members' empirical CDF,
    which penalises small ensembles.

    ``M == 1``: the fair spread term is ``0 / 0``. We return ``|x - y|`` (the CRPS of a
    deterministic forecast, i.e. its absolute error), which is also what ``fair=False`` gives;
    ``scores`` returns NaN for ``method="fair"`` with one member. A NaN in the truth or in any
    member gives NaN for that cell (``scores`` would drop the NaN members instead).
    """
    x, y, invalid = _as_ensemble(members, truth)
    m = x.shape[0]
    skill = np.abs(x - y).mean(axis=0)
    if m == 1:
        crps = skill
    else:
        denominator = 2.0 * m * (m - 1) if fair else 2.0 * m * m
        crps = skill - _pairwise_abs_sum(x) / denominator
    return np.asarray(np.where(invalid, np.nan, crps), dtype=np.float64)


def ensemble_mean(members: npt.ArrayLike) -> F64:
    """Per-cell mean over the members (axis 0); a NaN member makes the cell NaN.

    The ensemble mean is the deterministic forecast whose squared error enters the spread/skill
    ratio, so it must follow the same NaN rule as the other scores.
    """
    x = np.asarray(members, dtype=np.float64)
    if x.ndim < 1 or x.shape[0] < 1:
        raise ValueError(f"members must have at least one member on axis 0, got shape {x.shape}")
    return np.asarray(x.mean(axis=0), dtype=np.float64)


def ensemble_variance(members: npt.ArrayLike) -> F64:
    """Per-cell unbiased (``ddof=1``) variance over the members; NaN for ``M == 1``.

    Why ``ddof=1``: the spread/skill ratio compares the variance of the distribution the members
    are drawn from with the error of the mean, and only the unbiased estimate has the
    expectation ``sigma**2`` for a finite ensemble. One member has no spread estimate at all, so
    NaN is returned (without numpy's degrees-of-freedom warning).
    """
    x = np.asarray(members, dtype=np.float64)
    if x.ndim < 1 or x.shape[0] < 1:
        raise ValueError(f"members must have at least one member on axis 0, got shape {x.shape}")
    if x.shape[0] == 1:
        return np.full(x.shape[1:], np.nan, dtype=np.float64)
    return np.asarray(x.var(axis=0, ddof=1), dtype=np.float64)


def spread_skill_ratio(mean_variance: npt.ArrayLike, mean_squared_error_of_mean: npt.ArrayLike,
                       members: int) -> float | F64:
    """Finite-ensemble-corrected spread/skill ratio ``sqrt((M + 1) / M) * sqrt(var) / sqrt(mse)``.

    Inputs are already averaged (over cells with latitude weights, and over initialisations):
    ``mean_variance`` of :func:`ensemble_variance` and the mean squared error of
    :func:`ensemble_mean`. Why the factor: if the truth ``y`` and the ``M`` members are drawn
    from the same distribution (variance ``sigma**2``), the ensemble mean has variance
    ``sigma**2 / M`` about the distribution's centre, so ``E[(mean - y)**2] = (1 + 1/M) sigma**2``
    while ``E[var_ddof1] = sigma**2``. Multiplying by ``(M + 1) / M`` makes the ratio 1 in
    expectation for a perfectly calibrated ensemble of any size; below 1 is under-dispersed
    (over-confident), above 1 over-dispersed. A scalar input gives a ``float``.
    """
    if members < 1:
        raise ValueError(f"members must be >= 1, got {members}")
    var = np.asarray(mean_variance, dtype=np.float64)
    mse = np.asarray(mean_squared_error_of_mean, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.sqrt((members + 1.0) / members) * np.sqrt(var) / np.sqrt(mse)
    if ratio.ndim == 0:
        return float(ratio)
    return np.asarray(ratio, dtype=np.float64)


def truth_ranks(members: npt.ArrayLike, truth: npt.ArrayLike, rng: np.random.Generator) -> I64:
    """Per-cell rank of the truth among the members: ``0..M`` members below it, ``-1`` where NaN.

    Ties: if the truth equals ``e`` members and ``b`` members are below it, the rank is drawn
    uniformly from ``b, b + 1, ..., b + e``. ``scores.rank_histogram`` instead spreads the cell's
    unit mass evenly (``1 / (e + 1)`` each) over those same ranks; our random draw has exactly that
    expectation, so both give a flat histogram for a calibrated ensemble of discrete values (e.g.
    rain with many zeros), while keeping one integer rank per cell. Without ties (continuous data)
    the result is deterministic and equals ``scores``' rank minus one. ``rng`` is used for every
    cell, so the result depends only on the data and the generator's state.
    """
    x, y, invalid = _as_ensemble(members, truth)
    below = (x < y).sum(axis=0)
    tied = (x == y).sum(axis=0)
    offset = rng.integers(0, tied + 1)
    ranks = np.asarray(below + offset, dtype=np.int64)
    return np.asarray(np.where(invalid, -1, ranks), dtype=np.int64)


def rank_counts(ranks: npt.ArrayLike, members: int) -> I64:
    """Histogram of :func:`truth_ranks` output: shape ``(M + 1,)``, the ``-1`` (missing) cells ignored.

    Counts (not frequencies) are returned so that batches can be summed before the flatness test,
    whose chi-square statistic needs the number of cells.
    """
    if members < 1:
        raise ValueError(f"members must be >= 1, got {members}")
    r = np.asarray(ranks)
    if r.size and not np.issubdtype(r.dtype, np.integer):
        raise TypeError(f"ranks must be integers, got {r.dtype}")
    r = r.astype(np.int64).ravel()
    r = r[r >= 0]
    if r.size and int(r.max()) > members:
        raise ValueError(f"rank {int(r.max())} is out of range 0..{members}")
    return np.bincount(r, minlength=members + 1).astype(np.int64)


def _gamma_p_series(a: float, x: float) -> float:
    """Regularized lower incomplete gamma ``P(a, x)`` by its power series (good for ``x < a + 1``).

    ``P(a, x) = x**a e**-x / Gamma(a + 1) * sum_n x**n / ((a + 1) ... (a + n))``; every term is
    positive and, for ``x < a + 1``, the ratio of successive terms ``x / (a + n)`` is below one.
    """
    term = 1.0
    total = 1.0
    denominator = a
    for _ in range(_GAMMA_MAX_TERMS):
        denominator += 1.0
        term *= x / denominator
        total += term
        if term < total * _GAMMA_EPS:
            break
    else:  # pragma: no cover - the series converges long before this for x < a + 1
        raise ArithmeticError(f"incomplete gamma series did not converge for a={a}, x={x}")
    return total * math.exp(a * math.log(x) - x - math.lgamma(a + 1.0))


def _gamma_q_fraction(a: float, x: float) -> float:
    """Regularized upper incomplete gamma ``Q(a, x)`` by its continued fraction (``x >= a + 1``).

    ``Q(a, x) = x**a e**-x / Gamma(a) * 1 / (b_0 + c_1 / (b_1 + c_2 / (b_2 + ...)))`` with
    ``b_n = x + 2n + 1 - a`` and ``c_n = -n (n - a)``, evaluated front to back with the modified
    Lentz recursion (the running value is a product of ratios, so no tail needs guessing). Small
    tail probabilities keep full relative precision, which ``1 - P`` would lose.
    """
    b = x + 1.0 - a
    ratio_c = 1.0 / _TINY
    ratio_d = 1.0 / b
    value = ratio_d
    for n in range(1, _GAMMA_MAX_TERMS):
        c_n = -n * (n - a)
        b += 2.0
        ratio_d = b + c_n * ratio_d
        ratio_d = 1.0 / (ratio_d if abs(ratio_d) > _TINY else _TINY)
        ratio_c = b + c_n / ratio_c
        ratio_c = ratio_c if abs(ratio_c) > _TINY else _TINY
        step = ratio_c * ratio_d
        value *= step
        if abs(step - 1.0) < _GAMMA_EPS:
            break
    else:  # pragma: no cover - converges in a few dozen steps for x >= a + 1
        raise ArithmeticError(f"incomplete gamma fraction did not converge for a={a}, x={x}")
    return value * math.exp(a * math.log(x) - x - math.lgamma(a))


def chi2_sf(statistic: float, dof: float) -> float:
    """Survival function ``P(X >= statistic)`` of the chi-square distribution with ``dof`` degrees.

    It is the regularized upper incomplete gamma ``Q(dof / 2, statistic / 2)``. Written here so that
    the package does not need scipy at runtime; the tests compare it with ``scipy.stats.chi2.sf``.
    """
    if not dof > 0:
        raise ValueError(f"dof must be > 0, got {dof}")
    if math.isnan(statistic):
        return math.nan
    if statistic <= 0.0:
        return 1.0
    if math.isinf(statistic):
        return 0.0
    a = 0.5 * dof
    x = 0.5 * statistic
    if x < a + 1.0:
        return max(0.0, 1.0 - _gamma_p_series(a, x))
    return _gamma_q_fraction(a, x)


def rank_histogram_flatness(counts: npt.ArrayLike) -> tuple[float, float]:
    """Pearson chi-square test of a rank histogram against the uniform one: ``(statistic, p_value)``.

    A calibrated ensemble puts the truth in each of the ``M + 1`` bins with probability
    ``1 / (M + 1)``, so ``sum (n_k - N / (M + 1))**2 / (N / (M + 1))`` follows a chi-square
    distribution with ``M`` degrees of freedom; a tiny p-value means the histogram is not flat
    (U-shaped: under-dispersed, dome: over-dispersed, sloped: biased). The cells must be
    independent for the p-value to mean that; neighbouring grid cells are not, so with a whole
    field treat it as a rough indication. An empty histogram gives ``(nan, nan)``.
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or c.size < 2:
        raise ValueError(f"counts must be a 1-D histogram with at least 2 bins, got shape {c.shape}")
    if np.any(c < 0) or np.any(~np.isfinite(c)):
        raise ValueError("counts must be finite and non-negative")
    total = float(c.sum())
    if total == 0.0:
        return math.nan, math.nan
    expected = total / c.size
    statistic = float(((c - expected) ** 2).sum() / expected)
    return statistic, chi2_sf(statistic, c.size - 1)


def brier_ensemble(members: npt.ArrayLike, truth: npt.ArrayLike, threshold: float, fair: bool = True) -> F64:
    """Per-cell Brier score of the event ``value >= threshold``, the probability being the member fraction.

    ``(p - o)**2`` with ``p = i / M`` (``i`` members with the event) and ``o`` the observed event
    (0 or 1). ``fair=True`` subtracts Ferro's correction ``p (1 - p) / (M - 1)``, which removes the
    penalty a finite ensemble pays for sampling noise in ``p`` (as ``scores``'
    ``brier_score_for_ensemble(..., fair_correction=True)``, whose event operator defaults to the
    same ``operator.ge``). For ``M == 1`` no correction is applied (it would be ``0 / 0``), as in
    ``scores``. A NaN in the truth or in any member gives NaN for that cell.
    """
    if math.isnan(threshold):
        raise ValueError("threshold must not be NaN")
    x, y, invalid = _as_ensemble(members, truth)
    m = x.shape[0]
    p = (x >= threshold).sum(axis=0) / float(m)
    observed = (y >= threshold).astype(np.float64)
    score = (p - observed) ** 2
    if fair and m > 1:
        score = score - p * (1.0 - p) / (m - 1.0)
    return np.asarray(np.where(invalid, np.nan, score), dtype=np.float64)


__all__ = [
    "brier_ensemble",
    "chi2_sf",
    "crps_ensemble",
    "ensemble_mean",
    "ensemble_variance",
    "rank_counts",
    "rank_histogram_flatness",
    "spread_skill_ratio",
    "truth_ranks",
]
