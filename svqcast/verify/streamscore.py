"""Scores accumulated while forecasting: `svqcast predict --init-times ... --score-against TRUTH`.

A WeatherBench2-style evaluation of a year of initialisations should not read the forecast back.
Each batch's forecast is scored as it is made, through the very code of `svqcast score`
(`svqcast.verify.scoring`: the same fields, area weights, masks and `Sums`), and the batch's
per-(region, initialisation, lead) means are returned as a payload that the stream saves beside
the region's completion marker. At the end the payloads of every region (also those of an
earlier, interrupted run, or of other ranks) are put back in initialisation order and reduced by
`svqcast score`'s tables: the report equals `svqcast score STORE --truth TRUTH`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from svqcast.errors import UsageError
from svqcast.sources.forecast_files import ForecastView, open_forecast
from svqcast.sources.opener import open_dataset
from svqcast.verify.derived import Field
from svqcast.verify.regions import parse_regions, region_masks
from svqcast.verify.score_tables import Bootstrap, Sums
from svqcast.verify.scoring import _open_fields, _Run, _Setup, area_weights, field_report, score_report

_SCORES = ("mse", "mae", "bias", "acc")


class StreamScorer:
    """`on_batch` / `on_finish` hooks of `svqcast.forecast.stream.StreamHooks` that score every
    batch against `truth` (and `climatology` for ACC) and report what `svqcast score` reports."""

    def __init__(self, truth: str | os.PathLike[str], store: str | os.PathLike[str], *,
                 climatology: str | os.PathLike[str] | None = None, regions: str | None = None,
                 bootstrap: int = 1000, seed: int = 0) -> None:
        if bootstrap < 0:
            raise UsageError(f"`bootstrap` {bootstrap}: give a number of resamples, or 0 for no intervals")
        self.truth, self.store, self.climatology = truth, Path(store), climatology
        self.regions, self.names = regions, parse_regions(regions)
        self.boot = Bootstrap(bootstrap, seed=seed) if bootstrap > 0 else None
        self._tds = open_dataset(truth, {}, strict=False)
        self._cds = None if climatology is None else open_dataset(climatology, {}, strict=False)
        self._srcs = (str(truth), str(climatology) if climatology is not None else "climatology")

    def _setup(self, fv: ForecastView) -> tuple[_Setup, list[Field], dict[str, str]]:
        masks, region_notes = region_masks(self.names, fv.y if fv.latlon else None, fv.x if fv.latlon else None,
                                           (fv.y.size, fv.x.size), asked=self.regions not in (None, "all"))
        notes = list(fv.notes) + region_notes
        fields, not_scored = _open_fields(fv, self._tds, self._cds, self._srcs, False, notes)
        st = _Setup(fv, list(masks), list(masks.values()), self.boot, notes, lambda _: None)
        return st, fields, not_scored

    def on_batch(self, k: int, out: Any) -> dict[str, np.ndarray]:
        """Score one batch (`out`, the forecast as written); its sums as a payload."""
        fv = open_forecast(out, None, {}, strict=False)
        st, fields, _ = self._setup(fv)
        payload: dict[str, np.ndarray] = {}
        shape = (len(st.masks), fv.inits.size, fv.leads.size)
        for j, fld in enumerate(fields):
            run = _Run(fv, fld, st.masks, area_weights(fv), st.notes, Sums.empty(shape), Sums.empty(shape))
            for i in range(fv.inits.size):
                run.score_init(i)
            for who, sums in (("model", run.model), ("pers", run.pers)):
                payload.update({f"f{j}_{who}_{s}": getattr(sums, s) for s in _SCORES})
                payload.update({f"f{j}_{who}_x_{key}": arr for key, arr in sums.extra.items()})
            payload[f"f{j}_missing"] = np.array(sorted(run.missing), dtype=np.int64)
            payload[f"f{j}_missing_pairs"] = np.array(run.missing_pairs)
            if run.ever_valid is not None:
                payload[f"f{j}_ever_valid"] = run.ever_valid
        return payload

    def on_finish(self, payloads: Iterator[tuple[int, dict[str, np.ndarray]]]) -> dict[str, Any]:
        """All regions' payloads -> the `svqcast score` report (the store's metadata read, not its values)."""
        fv = open_forecast(self.store, None, {}, strict=False)
        st, fields, not_scored = self._setup(fv)
        shape = (len(st.masks), fv.inits.size, fv.leads.size)
        runs = [_Run(fv, fld, st.masks, area_weights(fv), st.notes, Sums.empty(shape), Sums.empty(shape))
                for fld in fields]
        start = 0
        for _, data in payloads:
            n = 0
            for j, run in enumerate(runs):
                n = data[f"f{j}_model_mse"].shape[1]
                _merge(run, data, j, slice(start, start + n))
            start += n
        results = {fld.key: field_report(st, fld, run) for fld, run in zip(fields, runs, strict=True)}
        report = score_report(st, self._srcs, self.climatology, results, not_scored)
        report["forecast"] = str(self.store)
        fv.close()
        return report


def _merge(run: _Run, data: dict[str, np.ndarray], j: int, where: slice) -> None:
    """One region's payload into the run's sums at its initialisations."""
    for who, sums in (("model", run.model), ("pers", run.pers)):
        for s in _SCORES:
            getattr(sums, s)[:, where] = data[f"f{j}_{who}_{s}"]
        prefix = f"f{j}_{who}_x_"
        for key in (k for k in data if k.startswith(prefix)):
            name = key[len(prefix):]
            sums.extra.setdefault(name, np.full(sums.mse.shape[1:], np.nan))[where] = data[key]
    run.missing.update(int(v) for v in data[f"f{j}_missing"])
    run.missing_pairs += int(data[f"f{j}_missing_pairs"])
    if f"f{j}_ever_valid" in data:
        seen = np.asarray(data[f"f{j}_ever_valid"], dtype=bool)
        run.ever_valid = seen if run.ever_valid is None else run.ever_valid | seen


__all__ = ["StreamScorer"]
