"""The phase of a time within a calendar cycle, for models that forecast anomalies from a
climatology (``model.residual = "climatology"``).

Such a model keeps, as a buffer, the training split's mean frame for every position of the
cycle (every half hour of the week for the NYC flows) and predicts the departure from it,
so it needs to know where in the cycle each sample starts: the *phase*, the index of the
last input frame's time within the cycle. Phases count whole time steps from Monday
1970-01-05 00:00 UTC, so a daily cycle starts at midnight and a weekly one on Monday
midnight -- the same alignment as :class:`svqcast.metrics.Climatology` (mode ``"week"``),
which makes the untrained model's base forecast exactly that climatology.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from svqcast.errors import UsageError
from svqcast.metrics import target_samples

#: the origin of every cycle: a Monday, at midnight UTC
CYCLE_ORIGIN = np.datetime64("1970-01-05T00:00:00", "s")


def phase_of(times: Any, step_seconds: float, period: int) -> np.ndarray:
    """Index (0 .. period-1) of each of `times` within a cycle of `period` steps of
    `step_seconds`. Times must fall on whole steps from the origin (they do for any
    regular half-hourly or hourly axis)."""
    step = int(round(float(step_seconds)))
    if step <= 0 or period < 1:
        raise UsageError(f"a climatology cycle needs a positive time step and period, got {step_seconds} s x {period}")
    seconds = (np.asarray(times).astype("datetime64[s]") - CYCLE_ORIGIN).astype(np.int64)
    return (seconds // step) % int(period)


def needs_phase(model: torch.nn.Module) -> bool:
    """True for a model whose forward needs `phase` (a climatology residual)."""
    return bool(getattr(model, "needs_phase", False))


def cycle_of(model: torch.nn.Module) -> int:
    """The length (time steps) of a climatology-residual model's cycle."""
    period: Any = model.residual_period
    return int(period)


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
    once, as :func:`svqcast.metrics.climatology_from_dataset`). A phase the split never
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


__all__ = ["CYCLE_ORIGIN", "PhaseDataset", "cycle_of", "fill_climatology", "needs_phase", "phase_of"]
