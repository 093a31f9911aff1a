"""The phase of a time within a calendar cycle, for models that forecast anomalies from a
climatology (``model.residual = "climatology"``).

Such a model keeps, as a buffer, the training split's mean frame for every position of the
cycle (every half hour of the week for the NYC flows) and predicts the departure from it,
so it needs to know where in the cycle each sample starts: the *phase*, the index of the
last input frame's time within the cycle. Phases count whole time steps from Monday
1970-01-05 00:00 UTC, so a daily cycle starts at midnight and a weekly one on Monday
midnight -- the same alignment as :class:`svqcast.data.climatology.Climatology` (mode ``"week"``),
which makes the untrained model's base forecast exactly that climatology.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from svqcast.errors import UsageError

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


__all__ = ["CYCLE_ORIGIN", "cycle_of", "needs_phase", "phase_of"]
