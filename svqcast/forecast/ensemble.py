"""Ensembles from a deterministic network: members by perturbation, by lag, or by model.

* ``noise``: initial-condition perturbations. Each member adds to every input frame one field
  of spatially correlated Gaussian noise per channel (white noise smoothed by a Gaussian of
  `length` cells in Fourier space, scaled to unit variance), times the channel's amplitude in
  physical units. The amplitudes are fitted once on the validation split so that spread matches
  skill (`fit_noise_amplitude`), stored with the model, and can be overridden.
  One amplitude cannot make every lead calibrated (the network damps small perturbations at
  short leads and its error outgrows them later), so the fit also stores a per-lead
  *dispersion*: each lead's members are moved towards or away from their mean by a factor
  fitted on the validation split (`apply_dispersion`), which leaves the ensemble mean alone.
* ``lagged``: member k is the forecast from the initialisation k steps earlier, aligned by
  valid time (its leads are k steps longer).
* ``models``: one member per model (several seeds or architectures of the same data).

Members are reproducible: member k's noise comes from ``numpy.random.default_rng([seed, k])``,
whatever the batching. They are run `batch` at a time, so memory grows with the batch, not
with the number of members.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from svqcast.data.spec import time_step
from svqcast.errors import DataError, UsageError
from svqcast.progress import Progress

KINDS = ("noise", "lagged", "models")
DEFAULT_LENGTH = 3.0  # correlation length of the noise, in grid cells


@dataclass
class Members:
    """How to make an ensemble; `amplitude` None: the model's fitted amplitudes."""

    count: int
    kind: str = "noise"
    seed: int = 0
    amplitude: list[float] | None = None
    length: float = DEFAULT_LENGTH
    models: list[str] = field(default_factory=list)
    batch: int = 8

    def check(self, channels: int | None = None) -> None:
        if self.kind not in KINDS:
            raise UsageError(f"`perturb` {self.kind!r}: choose one of {', '.join(KINDS)}")
        if self.count < 2 and self.kind != "models":
            raise UsageError(f"`members` {self.count}: an ensemble needs at least 2 members")
        if self.amplitude is not None:
            bad = [a for a in self.amplitude if not (math.isfinite(a) and a >= 0)]
            if bad:
                raise UsageError(f"`noise_amplitude` {bad[0]}: amplitudes are finite and not negative")
            if channels is not None and len(self.amplitude) not in (1, channels):
                raise UsageError(f"`noise_amplitude` has {len(self.amplitude)} values for {channels} channels; "
                                 "give one, or one per channel")
        if not (math.isfinite(self.length) and self.length >= 0):
            raise UsageError(f"`noise_length` {self.length}: a length in grid cells, not negative")
        if self.kind == "models" and len(self.models) < 2:
            raise UsageError("`perturb` models needs at least two models (repeat `model`)")

    def describe(self, amplitude: Sequence[float] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "members": self.count, "seed": self.seed}
        if self.kind == "noise":
            out.update(amplitude=[float(a) for a in (amplitude or self.amplitude or [])], length_cells=self.length)
        if self.kind == "models":
            out["models"] = list(self.models)
        return out


def correlated_noise(shape: tuple[int, int], length: float, rng: np.random.Generator) -> np.ndarray:
    """A (H, W) Gaussian field of unit variance (in expectation) with a Gaussian correlation of
    `length` cells: white noise filtered in Fourier space (periodic, which is fine for noise)."""
    h, w = shape
    white = rng.standard_normal((h, w))
    if length <= 0:
        return white
    ky = np.fft.fftfreq(h)[:, None]
    kx = np.fft.fftfreq(w)[None, :]
    gain = np.exp(-2.0 * (math.pi * length) ** 2 * (ky**2 + kx**2))
    field_ = np.fft.ifft2(np.fft.fft2(white) * gain).real
    return field_ / math.sqrt(float(np.mean(gain**2)))  # the filter's variance, so the field has unit variance


def perturbed(frames: np.ndarray, member: int, amplitude: np.ndarray, length: float, seed: int) -> np.ndarray:
    """`frames` (n, T, C, H, W) plus member `member`'s noise: one field per (initialisation,
    channel), the same for every input frame (a perturbed initial state, not flicker)."""
    rng = np.random.default_rng([seed, member])
    n, _, c, h, w = frames.shape
    noise = np.stack([np.stack([correlated_noise((h, w), length, rng) for _ in range(c)]) for _ in range(n)])
    return (frames + (noise * amplitude.reshape(1, -1, 1, 1))[:, None]).astype(np.float32)


def noise_members(fc: Any, frames: np.ndarray, steps: int, members: Members, amplitude: np.ndarray,
                  phases: np.ndarray | None = None,
                  progress: Progress | None = None) -> tuple[np.ndarray, list[int]]:
    """(n, M, steps, C, H, W) forecasts of the perturbed members, `members.batch` members per
    network batch."""
    n = frames.shape[0]
    out: np.ndarray | None = None
    leads: list[int] = []
    for a in range(0, members.count, max(1, members.batch)):
        group = list(range(a, min(members.count, a + members.batch)))
        batch = np.concatenate([perturbed(frames, k, amplitude, members.length, members.seed) for k in group])
        reps = None if phases is None else np.tile(phases, len(group))
        values, leads, _ = fc.rollout(batch, steps, progress, reps)
        if out is None:
            out = np.empty((n, members.count, *values.shape[1:]), dtype=np.float32)
        out[:, group] = values.reshape(len(group), n, *values.shape[1:]).swapaxes(0, 1)
    assert out is not None
    return out, leads


def apply_dispersion(values: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """(n, M, T, C, H, W) members with each lead's deviations from the ensemble mean scaled by
    `factors` (T_fit, C); leads past the fitted ones keep the last lead's factor. The ensemble
    mean is unchanged and the spread of lead t is scaled by exactly `factors[t]`."""
    t = values.shape[2]
    d = np.asarray(factors, dtype=np.float64)
    d = d[np.minimum(np.arange(t), d.shape[0] - 1)]  # (T, C)
    mean = values.mean(axis=1, keepdims=True, dtype=np.float64)
    scaled = mean + (values - mean) * d.reshape(1, 1, t, -1, 1, 1)
    return scaled.astype(np.float32)


def lag_inits(fc: Any, init: np.ndarray, count: int) -> list[Any]:
    """The initialisations of a lagged ensemble: `init` and the `count - 1` before it, one model
    step apart (fixed-step models only: a calendar or frame step has no fixed length)."""
    step = time_step(fc.spec)
    if step is None:
        raise UsageError("`perturb` lagged needs a model with a fixed time step (hours, days); use noise")
    start = np.asarray(init).astype("datetime64[ns]").reshape(-1)[-1]
    return [start - k * step.astype("timedelta64[ns]") for k in range(count)]


def lagged_members(values: np.ndarray, steps: int) -> np.ndarray:
    """(1, M, steps, ...) from the forecasts of the M lagged initialisations (M, steps + M - 1, ...):
    member k (initialised k steps earlier) at leads k+1 .. k+steps, so every member is valid
    at the same times as the newest one."""
    m = values.shape[0]
    return np.stack([values[k, k:k + steps] for k in range(m)])[None]


def same_data(specs: Sequence[Any], refs: Sequence[str]) -> None:
    """Members of a `models` ensemble must forecast the same thing on the same grid."""
    first = specs[0]
    for spec, ref in zip(specs[1:], refs[1:], strict=True):
        for what, a, b in (("variables", first.channel_names, spec.channel_names), ("units", first.units, spec.units),
                           ("grid", first.coords, spec.coords), ("time step", first.time_step_seconds,
                                                                 spec.time_step_seconds)):
            if a != b:
                raise DataError(f"`model` {ref}: its {what} differ from {refs[0]}'s; the members of a models "
                                "ensemble must forecast the same variables on the same grid and step")


__all__ = ["DEFAULT_LENGTH", "KINDS", "Members", "apply_dispersion", "correlated_noise", "lag_inits", "lagged_members",
           "noise_members", "perturbed", "same_data"]
