"""Climatology of a training split: the mean field by calendar key, and the phase-aware
datasets a climatology-residual model trains on.

The one home of the training split's climatology: `svqcast.verify` uses it as a reference
forecast and for ACC, training fills a climatology-residual model's table from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from svqcast.errors import UsageError
from svqcast.models.phase import cycle_of, phase_of
from svqcast.sources.calendars import calendar_months

WEEKLY_KINDS = ("flow",)


class Climatology:
    """Mean field of the training split by calendar key, for ACC and the climatology forecast.

    Keys, chosen from what the training split covers:

    * ``"dayofyear-hour"`` when the training frames span at least a full year (every day of
      the year is present): the mean of all frames sharing (day of year, time of day);
    * ``"week"`` (time of the week, from Monday 00:00) for data whose dominant cycle is the
      week (the half-hourly NYC flows) when the training split spans at least a week: the
      historical average of the same half hour of the week;
    * ``"hour"`` (time of day) otherwise, e.g. the 23-day era5-uk-t2m sample, whose test
      days never occur in training: a diurnal-cycle climatology;
    * ``"mean"`` for data without a calendar (video frames): the mean training frame.

    A key missing from the training split (rare: an unusual time of day) falls back to the
    overall mean frame.
    """

    def __init__(self, mode: str, table: dict[Any, np.ndarray], overall: np.ndarray) -> None:
        self.mode = mode
        self.table = table
        self.overall = overall

    @staticmethod
    def _keys(times: np.ndarray, mode: str) -> list[Any]:
        if mode == "mean":
            return [None] * len(times)
        t = np.asarray(times).astype("datetime64[s]")
        day = t.astype("datetime64[D]")
        tod = (t - day).astype(np.int64)  # seconds of the day
        if mode == "hour":
            return [int(s) for s in tod]
        if mode == "month":  # month of the year: monthly and seasonal data
            return [int(m) % 12 for m in t.astype("datetime64[M]").astype(np.int64)]
        if mode == "week":  # seconds since Monday 00:00 (day 0 of datetime64 is a Thursday)
            weekday = (day.astype(np.int64) - 4) % 7
            return [int(w) * 86_400 + int(s) for w, s in zip(weekday, tod, strict=True)]
        year = t.astype("datetime64[Y]")
        doy = (day - year.astype("datetime64[D]")).astype(np.int64)
        return [(int(d), int(s)) for d, s in zip(doy, tod, strict=True)]

    @classmethod
    def from_frames(
        cls, frames: Iterable[tuple[np.ndarray, np.ndarray]], calendar: bool, weekly: bool = False,
        months_per_step: int | None = None,
    ) -> Climatology:
        """Build from ``(times, frames)`` chunks: times ``(n,)``, frames ``(n, C, H, W)``
        in physical units; duplicate times are counted once. `weekly`: key by the time of
        the week when the frames span less than a year but at least a week. `months_per_step`:
        the data's own cycle for calendar steps (month of the year for monthly and seasonal
        data; none, the training mean, for yearly data, which has no cycle within a year)."""
        seen: set[Any] = set()
        all_times: list[np.ndarray] = []
        chunks: list[tuple[np.ndarray, np.ndarray]] = []
        for times, fr in frames:
            keep = []
            for j, tm in enumerate(np.asarray(times)):
                key = tm.item() if hasattr(tm, "item") else tm
                if key not in seen:
                    seen.add(key)
                    keep.append(j)
            if keep:
                chunks.append((np.asarray(times)[keep], np.asarray(fr, dtype=np.float64)[keep]))
                all_times.append(np.asarray(times)[keep])
        if not chunks:
            raise ValueError("climatology: no training frames")
        mode = "mean"
        if calendar and months_per_step:
            mode = "month" if months_per_step < 12 else "mean"
        elif calendar:
            t = np.concatenate(all_times).astype("datetime64[D]")
            year = t.astype("datetime64[Y]")
            doys = set((t - year.astype("datetime64[D]")).astype(np.int64).tolist())
            mode = "dayofyear-hour" if len(doys) >= 365 else "hour"
            if mode == "hour" and weekly and len(set(t.tolist())) >= 7:
                mode = "week"
        sums: dict[Any, np.ndarray] = {}
        counts: dict[Any, np.ndarray] = {}
        total: np.ndarray | None = None
        n_total: np.ndarray | None = None
        for times, fr in chunks:
            for key, frame in zip(cls._keys(times, mode), fr, strict=True):
                finite = np.isfinite(frame)  # missing cells (land, gaps) count nowhere
                value = np.where(finite, frame, 0.0)
                if key in sums:
                    sums[key] += value
                    counts[key] += finite
                else:
                    sums[key] = value.copy()
                    counts[key] = finite.astype(np.int64)
                total = value.copy() if total is None else total + value
                n_total = finite.astype(np.int64) if n_total is None else n_total + finite
        assert total is not None and n_total is not None  # `chunks` is not empty
        with np.errstate(invalid="ignore", divide="ignore"):  # NaN where a cell never holds data
            table = {k: sums[k] / counts[k] for k in sums}
            return cls(mode, table, total / n_total)

    def at(self, times: np.ndarray) -> np.ndarray:
        """Climatology at each of ``times``: ``(n, C, H, W)``."""
        keys = self._keys(np.asarray(times), self.mode)
        return np.stack([self.table.get(k, self.overall) for k in keys])

    def describe(self) -> str:
        return {
            "dayofyear-hour": "day-of-year x time-of-day mean of the training split",
            "hour": "time-of-day mean of the training split (it spans less than a year)",
            "week": "time-of-week mean of the training split (the historical average of the same slot of the week)",
            "month": "month-of-year mean of the training split (monthly or seasonal data)",
            "mean": "mean training frame (no calendar, or yearly data: no cycle within a year)",
        }[self.mode]


def target_samples(n: int, t_out: int) -> list[int]:
    """Samples ``0, s, 2s, ...`` (``s = t_out``) and the last one: with contiguous targets
    their target frames cover every frame that can be a target, each once (or nearly)."""
    step = max(1, int(t_out))
    idx = list(range(0, n, step))
    return idx + [n - 1] if n and idx[-1] != n - 1 else idx


def climatology_from_dataset(ds: Any, max_frames: int | None = None) -> Climatology:
    """Climatology of a split dataset's target frames, in physical units.

    Reads the targets of samples ``0, s, 2s, ...`` with ``s = T_out`` (with contiguous
    targets this visits every frame that can be a target exactly once) via the dataset's
    public ``raw(i)`` / ``times(i)``.
    """
    spec = ds.spec
    step = max(1, int(spec.t_out))
    calendar = getattr(spec, "time_kind", "datetime") == "datetime"

    def chunks() -> Iterable[tuple[np.ndarray, np.ndarray]]:
        read = 0
        for i in target_samples(len(ds), step):
            _, y = ds.raw(i)
            _, ty = ds.times(i)
            yield np.asarray(ty), np.asarray(y)
            read += len(ty)
            if max_frames is not None and read >= max_frames:
                break

    return Climatology.from_frames(chunks(), calendar, weekly=getattr(spec, "kind", "") in WEEKLY_KINDS,
                                   months_per_step=calendar_months(spec))


def dataset_step_seconds(ds: Any) -> float:
    """The time step of a split dataset; a climatology needs a calendar time axis."""
    spec = ds.spec
    step = getattr(spec, "time_step_seconds", None)
    if getattr(spec, "time_kind", "datetime") != "datetime" or not step:
        raise UsageError(f"{spec.dataset}: model.residual = 'climatology' needs data with a calendar time axis "
                         "and a fixed time step; use residual = 'last' or 'none'")
    return float(step)


class PhaseDataset(Dataset):
    """(x, y, phase): a split dataset's samples with the phase of their last input frame."""

    def __init__(self, ds: Any, period: int) -> None:
        self.ds = ds
        self.spec = ds.spec
        step = dataset_step_seconds(ds)
        self.phases = [int(phase_of(ds.times(i)[0][-1:], step, period)[0]) for i in range(len(ds))]

    def __len__(self) -> int:
        return len(self.phases)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        x, y = self.ds[i]
        return x, y, self.phases[i]


def fill_climatology(model: torch.nn.Module, train_ds: Any) -> int:
    """Set the model's climatology buffer to the mean normalised frame of the training split
    at every phase of its cycle (targets of samples 0, s, 2s, ... with s = T_out, each frame
    once, as :func:`climatology_from_dataset`). A phase the split never
    visits gets the overall mean frame. Returns the number of phases seen."""
    period = cycle_of(model)
    step = dataset_step_seconds(train_ds)
    buf = model.get_buffer("climatology")
    sums = torch.zeros_like(buf, dtype=torch.float64)
    counts = torch.zeros(period, dtype=torch.float64)
    seen: set[int] = set()
    for i in target_samples(len(train_ds), int(train_ds.spec.t_out)):
        _, y = train_ds[i]
        times = np.asarray(train_ds.times(i)[1])
        for frame, t in zip(y, times.astype("datetime64[s]"), strict=True):
            if int(t.astype(np.int64)) in seen:
                continue
            seen.add(int(t.astype(np.int64)))
            k = int(phase_of(t, step, period))
            sums[k] += frame.double()
            counts[k] += 1
    if not seen:
        raise UsageError("model.residual = 'climatology': the training split has no frames")
    overall = sums.sum(0) / counts.sum()
    table = torch.where(counts.view(-1, 1, 1, 1) > 0, sums / counts.clamp(min=1).view(-1, 1, 1, 1), overall)
    with torch.no_grad():
        buf.copy_(table.to(buf.dtype))
    return int((counts > 0).sum())
