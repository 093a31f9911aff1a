"""Categorical (threshold-exceedance) scores for precipitation and radar nowcasts.

Why this module exists: rain-rate and reflectivity forecasts are judged by whether they put
an *event* (``value >= threshold``, e.g. 1 mm/h) in the right place, which the continuous
scores of :mod:`svqcast.verify.metrics` do not measure. Like those, everything here is a
streaming float64 accumulator: each function turns one batch of fields into small additive
*terms* (a 2x2 contingency table, or two FSS sums per field), the caller adds the terms over
(init, lead), and a final function turns the sums into scores. A test set is never held in
memory, and aggregating over many fields is exactly "sum the terms first".

Conventions (checked against the ``scores`` package 2.7.0 by ``tests/test_categorical.py``):

* **Event** = ``value >= threshold``. This is the default of
  ``scores.categorical.ThresholdEventOperator`` (``operator.ge``). Note that
  ``scores.spatial.fss_2d`` defaults to the strict ``np.greater``; we use ``>=`` for the FSS
  as well, so one threshold means one event set across all scores (the tests pass
  ``threshold_operator=np.greater_equal`` to ``fss_2d``).
* **Missing data**: cells that are NaN in the forecast or the truth, or False in ``valid``,
  are not counted in the contingency table (as ``scores`` does for NaN).
* **FAR** is the false alarm *ratio* ``F / (H + F)`` (``scores``:
  ``false_alarm_ratio``), not the false alarm *rate* ``F / (F + CN)`` (``scores``:
  ``false_alarm_rate`` = probability of false detection).
* **FSS** (Roberts and Lean 2008) follows ``scores.spatial.fss_2d`` with its default
  ``zero_padding=False``: only the ``(H - s + 1) x (W - s + 1)`` square windows that lie
  entirely inside the grid are used (no padding), and a scale larger than the grid is an
  error. Several fields are aggregated as ``1 - sum(mse) / sum(ref)``, which is what
  ``fss_2d`` computes when it reduces a time dimension (it averages per-field means, and every
  field has the same number of windows).
"""

from __future__ import annotations

import operator

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

#: order of the last axis of :func:`contingency`'s output
TABLE_FIELDS = ("hits", "false_alarms", "misses", "correct_negatives")
#: keys of :func:`categorical_scores`
SCORE_NAMES = ("pod", "far", "csi", "ets", "frequency_bias")


def _fields(forecast: npt.ArrayLike, truth: npt.ArrayLike, threshold: float,
            valid: npt.ArrayLike | None) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_],
                                                   npt.NDArray[np.bool_]]:
    """Validate the inputs once and return (forecast event, truth event, usable cell) masks.

    Shared by the contingency table and the FSS so that both define an event and a missing
    cell in exactly the same way.
    """
    f = np.asarray(forecast, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    if f.shape != t.shape:
        raise ValueError(f"forecast shape {f.shape} differs from truth shape {t.shape}")
    if f.ndim < 2:
        raise ValueError(f"fields must have shape (..., H, W), got {f.shape}")
    if np.isnan(threshold):
        raise ValueError("threshold is NaN")
    usable = ~(np.isnan(f) | np.isnan(t))
    if valid is not None:
        mask = np.asarray(valid)
        if mask.dtype != np.bool_:
            raise ValueError(f"valid must be a boolean mask, got dtype {mask.dtype}")
        try:
            mask = np.broadcast_to(mask, f.shape)
        except ValueError as exc:
            raise ValueError(f"valid of shape {mask.shape} does not broadcast to {f.shape}") from exc
        usable = usable & mask
    return (f >= threshold) & usable, (t >= threshold) & usable, usable


def contingency(forecast: npt.ArrayLike, truth: npt.ArrayLike, threshold: float,
                valid: npt.ArrayLike | None = None) -> F64:
    """2x2 contingency table of every (H, W) field, as float64 counts to be summed later.

    An event is ``value >= threshold`` (``scores``' ``ThresholdEventOperator`` default).
    Cells that are NaN in either array or False in ``valid`` (an (H, W) or broadcastable
    boolean mask, e.g. the radar coverage) are not counted, so hits + false alarms + misses
    + correct negatives equals the number of usable cells. Counts are returned per leading
    index (shape ``(..., 4)``, order :data:`TABLE_FIELDS`) rather than pre-summed so the caller
    can accumulate per lead time; float64 keeps the running sums exact up to 2**53.
    """
    fe, te, usable = _fields(forecast, truth, threshold, valid)
    axes = (-2, -1)
    hits = np.sum(fe & te, axis=axes)
    false_alarms = np.sum(fe & ~te, axis=axes)
    misses = np.sum(~fe & te, axis=axes)
    correct_negatives = np.sum(usable & ~fe & ~te, axis=axes)
    return np.stack([hits, false_alarms, misses, correct_negatives], axis=-1).astype(np.float64)


def _ratio(num: F64, den: F64) -> F64:
    """num / den with NaN (not inf, not a warning) where the denominator is zero: a score
    with no cases to judge is undefined, and NaN keeps it from polluting later averages
    silently."""
    out = np.full(np.broadcast_shapes(num.shape, den.shape), np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def categorical_scores(table: npt.ArrayLike) -> dict[str, F64]:
    """POD, FAR, CSI, ETS and frequency bias from (summed) contingency counts ``(..., 4)``.

    Scores are computed from the summed table, never averaged over fields, because a ratio
    of sums is the standard aggregation and stays defined when single fields have no events.
    With H hits, F false alarms, M misses, C correct negatives and N = H + F + M + C:

    * ``pod`` = H / (H + M) (probability of detection, hit rate);
    * ``far`` = F / (H + F): the false alarm **ratio** (``scores``' ``false_alarm_ratio``),
      not the false alarm rate F / (F + C);
    * ``csi`` = H / (H + F + M) (critical success index, threat score);
    * ``ets`` = (H - Hr) / (H + F + M - Hr) with Hr = (H + M)(H + F) / N, the equitable threat
      score (Gilbert skill score). It is evaluated in the algebraically identical form
      (HC - FM) / (HC - FM + N(F + M)), whose denominator is exactly zero (not a rounding
      residue) when the score is undefined: no events at all, or a perfect forecast with
      no correct negatives;
    * ``frequency_bias`` = (H + F) / (H + M).

    Each is NaN where its denominator is zero.
    """
    t = np.asarray(table, dtype=np.float64)
    if t.ndim < 1 or t.shape[-1] != 4:
        raise ValueError(f"table must have shape (..., 4), got {t.shape}")
    h, f, m, c = (t[..., i] for i in range(4))
    n = h + f + m + c
    cross = h * c - f * m
    return {
        "pod": _ratio(h, h + m),
        "far": _ratio(f, h + f),
        "csi": _ratio(h, h + f + m),
        "ets": _ratio(cross, cross + n * (f + m)),
        "frequency_bias": _ratio(h + f, h + m),
    }


def _window_counts(events: F64, scale: int) -> F64:
    """Number of events in every ``scale x scale`` window that lies inside the grid.

    A summed-area table (cumulative sums with a leading row and column of zeros) gives each
    window sum from four lookups, so the cost is O(H * W) whatever the scale. The counts of
    0/1 values are integers, exact in float64.
    """
    lead = events.shape[:-2]
    height, width = events.shape[-2:]
    table = np.zeros(lead + (height + 1, width + 1), dtype=np.float64)
    np.cumsum(np.cumsum(events, axis=-2), axis=-1, out=table[..., 1:, 1:])
    s = scale
    return table[..., s:, s:] - table[..., :-s, s:] - table[..., s:, :-s] + table[..., :-s, :-s]


def fss_terms(forecast: npt.ArrayLike, truth: npt.ArrayLike, threshold: float, scale: int,
              valid: npt.ArrayLike | None = None) -> F64:
    """Additive fractions-skill-score terms of every (H, W) field: ``(..., 2)`` = (mse, ref).

    mse = sum over windows of (Pf - Po)**2 and ref = sum of (Pf**2 + Po**2), where Pf and Po are
    the fractions of event cells (``value >= threshold``) in a ``scale x scale`` window. As in
    ``scores.spatial.fss_2d`` (default ``zero_padding=False``) only windows entirely inside the
    grid are used, ``(H - scale + 1) * (W - scale + 1)`` of them, so ``scale`` must not exceed
    H or W (ValueError, where ``scores`` raises DimensionError). The terms are returned
    instead of the FSS because the FSS of many fields is the ratio of summed terms
    (:func:`fss_from_terms`), not a mean of per-field scores.

    Each window is attributed to one cell: the window covering rows ``i - scale // 2`` to
    ``i - scale // 2 + scale - 1`` (same for columns) belongs to cell ``i``, its centre for odd
    scales (the placement of ``fss_2d``'s zero-padding mode for even ones). With ``valid``, and
    for NaN cells in either field, a masked cell counts as a non-event in every fraction it
    falls into (the denominator stays ``scale**2``) and the window of a masked cell is left
    out of both sums. Without a mask or NaN the terms reproduce ``fss_2d`` exactly (which
    treats NaN as a non-event but keeps its window).

    Sums are accumulated as integer event counts and divided by ``scale**4`` once, so they are
    exact until that division.
    """
    s = operator.index(scale)
    if s < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    fe, te, usable = _fields(forecast, truth, threshold, valid)
    height, width = fe.shape[-2:]
    if s > height or s > width:
        raise ValueError(f"scale {s} does not fit in the {height} x {width} grid")
    cf = _window_counts(fe.astype(np.float64), s)
    co = _window_counts(te.astype(np.float64), s)
    first = s // 2
    owner = usable[..., first:first + height - s + 1, first:first + width - s + 1]
    axes = (-2, -1)
    mse = np.sum(np.where(owner, (cf - co) ** 2, 0.0), axis=axes)
    ref = np.sum(np.where(owner, cf ** 2 + co ** 2, 0.0), axis=axes)
    return np.stack([mse, ref], axis=-1) / float(s) ** 4


def fss_from_terms(terms: npt.ArrayLike) -> F64:
    """FSS = 1 - mse / ref from :func:`fss_terms` output, summed over any set of fields.

    Sum the terms over (init, lead, ...) first and call this once: that is the aggregation of
    ``scores.spatial.fss_2d`` over a reduced time dimension. NaN where ref is 0 (no event in
    either field anywhere), where ``fss_2d`` returns 0: "nothing happened and nothing was
    forecast" is not a skill of 0, and NaN keeps it out of averages.
    """
    t = np.asarray(terms, dtype=np.float64)
    if t.ndim < 1 or t.shape[-1] != 2:
        raise ValueError(f"terms must have shape (..., 2), got {t.shape}")
    return 1.0 - _ratio(t[..., 0], t[..., 1])


__all__ = [
    "SCORE_NAMES",
    "TABLE_FIELDS",
    "categorical_scores",
    "contingency",
    "fss_from_terms",
    "fss_terms",
]
