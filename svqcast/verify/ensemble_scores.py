"""Probabilistic scores of an ensemble forecast file, accumulated like the deterministic ones.

Per (region, initialisation, lead): the latitude-weighted spatial means of the fair CRPS and of
the ensemble variance; per lead: the rank histogram of the truth among the members (whole grid)
and, at thresholds, the fair Brier score. The tables then give CRPS (mean over
initialisations), spread (root of the mean variance) and the spread/skill ratio
``sqrt((M+1)/M) * spread / RMSE of the ensemble mean``, 1 for a calibrated ensemble of M
members; the ensemble mean itself is scored by the deterministic tables (RMSE, MAE, bias, ACC).
The per-cell formulas are `svqcast.verify.ensemble_metrics` (checked against the `scores`
package in the tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from svqcast.verify.ensemble_metrics import (
    brier_ensemble,
    crps_ensemble,
    ensemble_variance,
    rank_counts,
    rank_histogram_flatness,
    spread_skill_ratio,
    truth_ranks,
)
from svqcast.verify.metrics import weighted_mean
from svqcast.verify.score_tables import interval


@dataclass
class EnsembleSums:
    """Accumulators of one ensemble field (M members) over regions, initialisations and leads."""

    members: int
    crps: np.ndarray  # (R, I, L)
    variance: np.ndarray  # (R, I, L)
    ranks: np.ndarray  # (L, M + 1) counts, whole grid
    thresholds: list[Any] = field(default_factory=list)  # events.Threshold
    brier: np.ndarray | None = None  # (K, I, L), whole grid
    seed: int = 0

    @classmethod
    def empty(cls, members: int, shape: tuple[int, int, int], thresholds: Sequence[Any] = (),
              seed: int = 0) -> EnsembleSums:
        brier = np.full((len(thresholds), shape[1], shape[2]), np.nan) if thresholds else None
        return cls(members, np.full(shape, np.nan), np.full(shape, np.nan),
                   np.zeros((shape[2], members + 1), dtype=np.int64), list(thresholds), brier, seed)

    def add(self, i: int, leads: np.ndarray, members: np.ndarray, truth: np.ndarray, w: np.ndarray,
            masks: Sequence[np.ndarray]) -> None:
        """One initialisation: `members` (M, L', H, W), `truth` (L', H, W) at the leads `leads`."""
        crps = crps_ensemble(members, truth)
        var = ensemble_variance(members)
        for r, mask in enumerate(masks):
            ok = np.isfinite(crps) & mask
            self.crps[r, i, leads] = weighted_mean(crps, w, ok)
            self.variance[r, i, leads] = weighted_mean(var, w, ok)
        ranks = truth_ranks(members, truth, np.random.default_rng([self.seed, i]))
        for j, lead in enumerate(leads):
            self.ranks[lead] += rank_counts(ranks[j], self.members)
        for k, thr in enumerate(self.thresholds):
            assert self.brier is not None
            b = brier_ensemble(members, truth, thr.value)
            self.brier[k, i, leads] = weighted_mean(b, w, np.isfinite(b))

    def rows(self, r: int, mse: np.ndarray) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Per-lead rows and the overall row of region `r`; `mse` (I, L) of the ensemble mean."""
        per_lead = [self._row(self.crps[r][:, j], self.variance[r][:, j], mse[:, j]) for j in range(mse.shape[1])]
        return per_lead, self._row(self.crps[r], self.variance[r], mse)

    def _row(self, crps: np.ndarray, var: np.ndarray, mse: np.ndarray) -> dict[str, Any]:
        with np.errstate(invalid="ignore"):
            mean_var = float(np.nanmean(var)) if np.isfinite(var).any() else np.nan
            mean_mse = float(np.nanmean(mse)) if np.isfinite(mse).any() else np.nan
        ratio = spread_skill_ratio(mean_var, mean_mse, self.members)
        return {"crps": _num(np.nanmean(crps) if np.isfinite(crps).any() else np.nan),
                "spread": _num(np.sqrt(mean_var)), "spread_skill": _num(float(ratio))}

    def field_report(self) -> dict[str, Any]:
        """The rank histogram per lead (with its chi-square flatness test) and the Brier scores."""
        tests = [rank_histogram_flatness(c) for c in self.ranks]
        out: dict[str, Any] = {"members": self.members, "rank_histogram": {
            "counts": self.ranks.tolist(), "chi2": [_num(t[0]) for t in tests], "p_value": [_num(t[1]) for t in tests]}}
        if self.brier is not None:
            with np.errstate(invalid="ignore"):
                out["brier"] = {thr.label: [_num(np.nanmean(self.brier[k][:, j]) if np.isfinite(
                    self.brier[k][:, j]).any() else np.nan) for j in range(self.brier.shape[2])]
                    for k, thr in enumerate(self.thresholds)}
        return out


def add_probabilistic(tables: dict[str, Any], ens: EnsembleSums | None, model: Any,
                      boot: Any) -> dict[str, Any]:
    """Put CRPS, spread and spread/skill (with a CRPS interval) into the rows of every region's
    table; for a deterministic field, CRPS is its MAE and the report says so. Returns the
    field-level keys to add (rank histogram, Brier, the note)."""
    if ens is None:
        for table in tables["regions"].values():
            for row in [*table["per_lead"], table["overall"]]:
                row["crps"] = row.get("mae")
        return {"crps_note": "a deterministic forecast: its CRPS equals its MAE"}
    for r, table in enumerate(tables["regions"].values()):
        per_lead, overall = ens.rows(r, model.mse[r])
        ci = interval(ens.crps[r], "crps", boot) if boot else None
        for j, (row, extra) in enumerate(zip(table["per_lead"], per_lead, strict=True)):
            row.update(extra)
            if ci is not None:
                row.setdefault("ci", {})["crps"] = [_num(ci[0, j]), _num(ci[1, j])]
        table["overall"].update(overall)
    return {"ensemble": ens.field_report()}


def _num(value: Any) -> float | None:
    v = float(value)
    return v if np.isfinite(v) else None


__all__ = ["EnsembleSums", "add_probabilistic"]
