"""Precipitation and radar scores: events above thresholds, and the fractions skill score.

`EventScores` accumulates, for one forecast, the 2x2 contingency table of every (threshold,
lead, channel) and the fractions-skill-score terms of every (threshold, scale, lead, channel),
summed over samples (`svqcast.verify.categorical` computes them per field). The report gives
POD, FAR (false alarm ratio), CSI, ETS and frequency bias per threshold and lead, and FSS per
threshold, scale and lead: pooled over all forecasts, as is usual for radar verification.

Thresholds are in the variable's units, or as a rate (``1mm/h``) that a variable stored as an
accumulation per time step (mm per 5 minutes) converts with its step; a variable without units
has no thresholds (svqcast never guesses units).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from svqcast.errors import UsageError
from svqcast.verify.categorical import categorical_scores, contingency, fss_from_terms, fss_terms

#: channel names that are precipitation (default thresholds and FSS in `evaluate`)
PRECIP_NAMES = ("precip", "precipitation", "tp", "total_precipitation", "rain", "rainfall", "pr", "rr",
                "precipitation_rate", "total_precipitation_6hr", "total_precipitation_24hr")
DEFAULT_THRESHOLDS = ("0.1mm/h", "1mm/h", "5mm/h")
DEFAULT_SCALES = (1, 5, 15)
_MM = {"mm", "millimeter", "millimetre", "kg m-2", "kg m**-2", "kg/m2", "kg/m^2"}
_MM_PER_H = {"mm/h", "mm h-1", "mm hr-1", "mm/hr", "mm h**-1", "kg m-2 h-1"}
_RATE = re.compile(r"^\s*([0-9.eE+-]+)\s*(mm/h|mm h-1|mm/hr)?\s*$")


@dataclass(frozen=True)
class Threshold:
    """A threshold as the user gave it (`label`) and in the variable's units (`value`)."""

    label: str
    value: float


def parse_thresholds(items: str | Sequence[str] | None, units: str | None, step_seconds: float | None,
                     what: str) -> list[Threshold]:
    """``"0.1,1,5"`` (the variable's units) or ``"1mm/h"`` -> Thresholds; a variable without units,
    or a rate for a variable that is neither a rate nor an accumulation per step, is a UsageError."""
    if items is None:
        return []
    texts = [p.strip() for t in ([items] if isinstance(items, str) else items) for p in str(t).split(",") if p.strip()]
    unit = (units or "").strip().lower()
    if texts and (not unit or unit in ("unknown", "1", "")):
        raise UsageError(f"`thresholds`: {what} has no units, so a threshold would mean nothing; set its units "
                         "attribute first")
    out: list[Threshold] = []
    for text in texts:
        m = _RATE.match(text)
        try:
            value = float(m.group(1)) if m else float("nan")
        except ValueError:
            value = float("nan")
        if m is None or not np.isfinite(value):
            raise UsageError(f"`thresholds` {text!r}: give numbers in {what}'s units ({units}) or rates like 1mm/h")
        if m.group(2):
            value = _from_rate(value, unit, step_seconds, text, what)
        out.append(Threshold(text, value))
    return out


def _from_rate(rate: float, unit: str, step_seconds: float | None, text: str, what: str) -> float:
    if unit in _MM_PER_H:
        return rate
    if unit in _MM and step_seconds:
        return rate * float(step_seconds) / 3600.0  # an accumulation over one time step
    raise UsageError(f"`thresholds` {text!r}: {what} is in {unit}, which a rate in mm/h cannot be converted to"
                     + ("" if step_seconds else " without a time step"))


def parse_scales(items: str | Sequence[int] | None) -> list[int]:
    """``"1,5,15"`` -> [1, 5, 15]: FSS window sizes in grid cells."""
    if items is None:
        return []
    texts = [p.strip() for p in items.split(",")] if isinstance(items, str) else [str(v) for v in items]
    try:
        scales = [int(t) for t in texts if t]
    except ValueError:
        raise UsageError(f"`fss_scales` {items!r}: give window sizes in grid cells, e.g. 1,5,15") from None
    if any(s < 1 for s in scales):
        raise UsageError("`fss_scales`: window sizes are whole numbers of cells, at least 1")
    return scales


def is_precipitation(name: str) -> bool:
    return name.lower().split("@")[0] in PRECIP_NAMES


class EventScores:
    """Pooled contingency tables and FSS terms of one forecast, per (threshold, [scale,] lead, channel)."""

    def __init__(self, thresholds: Sequence[Threshold], scales: Sequence[int], channels: int, leads: int,
                 shape: tuple[int, int]) -> None:
        self.thresholds = list(thresholds)
        self.scales = [s for s in scales if s <= min(shape)]
        self.dropped = [s for s in scales if s > min(shape)]
        self.table = np.zeros((len(self.thresholds), leads, channels, 4))
        self.fss = np.zeros((len(self.thresholds), len(self.scales), leads, channels, 2))

    def update(self, forecast: np.ndarray, truth: np.ndarray, channels: Sequence[int]) -> None:
        """Physical (B, T, C, H, W) forecast and truth; only `channels` (precipitation) are scored."""
        for k, thr in enumerate(self.thresholds):
            for c in channels:
                f, o = forecast[:, :, c], truth[:, :, c]
                self.table[k, :, c] += contingency(f, o, thr.value).sum(axis=0)
                for s, scale in enumerate(self.scales):
                    self.fss[k, s, :, c] += fss_terms(f, o, thr.value, scale).sum(axis=0)

    def add(self, leads: np.ndarray, forecast: np.ndarray, truth: np.ndarray, channel: int = 0) -> None:
        """(L', H, W) fields of the leads `leads` of one initialisation (`svqcast score`)."""
        for k, thr in enumerate(self.thresholds):
            self.table[k, leads, channel] += contingency(forecast, truth, thr.value)
            for s, scale in enumerate(self.scales):
                self.fss[k, s, leads, channel] += fss_terms(forecast, truth, thr.value, scale)

    def report(self, names: Sequence[str], channels: Sequence[int]) -> dict[str, Any]:
        """{channel: {threshold: {pod, far, csi, ets, frequency_bias: [per lead], fss: {scale: [per lead]}}}}."""
        out: dict[str, Any] = {}
        for c in channels:
            per: dict[str, Any] = {}
            for k, thr in enumerate(self.thresholds):
                scores = categorical_scores(self.table[k, :, c])
                row: dict[str, Any] = {key: _listed(v) for key, v in scores.items()}
                row["threshold"] = thr.value
                row["events_observed"] = int(self.table[k, :, c, 0].sum() + self.table[k, :, c, 2].sum())
                row["fss"] = {str(scale): _listed(fss_from_terms(self.fss[k, s, :, c]))
                              for s, scale in enumerate(self.scales)}
                per[thr.label] = row
            out[names[c]] = per
        return out


def _listed(values: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values).reshape(-1)]


__all__ = ["DEFAULT_SCALES", "DEFAULT_THRESHOLDS", "EventScores", "Threshold", "is_precipitation",
           "parse_scales", "parse_thresholds"]
