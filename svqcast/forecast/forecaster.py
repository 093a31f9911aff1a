"""`Forecaster`: a trained network plus its data spec, turning input fields into forecasts.

    fc = svqcast.load_model("era5-uk-t2m_gsta_svq")
    out = fc.predict(xr.open_dataset("input.nc"), lead_time="24h")   # CF-1.8 xarray.Dataset

The flow is the one of docs/architecture.md: `io` validates the input against the spec
(before any compute) -> z-score with the *training* statistics stored in the checkpoint ->
the network -> de-normalise -> a CF Dataset in physical units. Lead times beyond the
trained horizon (T_out frames) are produced autoregressively: the forecast frames are fed
back as input, and the output attributes say so.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from svqcast._version import __version__
from svqcast.data.masks import fill_missing
from svqcast.data.spec import DataSpec, relative_offsets, time_step
from svqcast.errors import DataError, UsageError
from svqcast.forecast.ensemble import Members, apply_dispersion, lag_inits, lagged_members, noise_members
from svqcast.forecast.inputs import PreparedInput, prepare_input
from svqcast.forecast.writer import build_forecast_dataset, with_members
from svqcast.models.phase import cycle_of, needs_phase, phase_of
from svqcast.progress import Progress, counted
from svqcast.sources.calendars import calendar_months
from svqcast.sources.leadtime import parse_calendar_lead, parse_lead_time, utc_now
from svqcast.zoo.checkpoint import load_checkpoint
from svqcast.zoo.hub import resolve_checkpoint, verify_checkpoint_integrity
from svqcast.zoo.registry import default_model_name

if TYPE_CHECKING:
    from torch import nn

MAX_STEPS = 10_000  # a sanity bound on roll-outs (keeps a typo from running for hours)


@dataclass
class Forecaster:
    """A network with the data spec it was trained on.

    `net` maps normalised `(B, T_in, C, H, W)` to `(B, T_out, C, H, W)`; `spec` is the
    `DataSpec` (variables, units, grid, time step, T_in/T_out, normalisation stats);
    `ref` names where the model came from (zoo name, hf://..., or a directory).
    """

    net: nn.Module
    spec: DataSpec
    ref: str = "model"
    meta: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 8

    def __post_init__(self) -> None:
        if not isinstance(self.spec, DataSpec):
            raise UsageError(
                f"Forecaster: spec must be a DataSpec, got {type(self.spec).__name__}; "
                "build one with svqcast.DataSpec.from_dict(...)"
            )

    # ------------------------------------------------------------------ properties
    @property
    def t_in(self) -> int:
        return self.spec.t_in

    @property
    def t_out(self) -> int:
        return self.spec.t_out

    @property
    def variables(self) -> list[str]:
        return list(self.spec.channel_names)

    @property
    def data_manifest_sha256(self) -> str | None:
        """sha256 of the manifest of the prepared store the model was trained on (None for
        checkpoints that predate data provenance, e.g. converted ones)."""
        value = (self.meta.get("provenance") or {}).get("data_manifest_sha256")
        return str(value) if value else None

    def describe(self) -> dict[str, Any]:
        step = time_step(self.spec)
        return {
            "model": self.ref,
            "preset": self.meta.get("preset"),
            "variables": self.variables,
            "units": list(self.spec.units),
            "grid": {d: len(self.spec.coords[d]) for d in self.spec.dims},
            "time_step_seconds": None if step is None else int(step / np.timedelta64(1, "s")),
            "t_in": self.t_in,
            "t_out": self.t_out,
        }

    # ------------------------------------------------------------------ steps
    def resolve_steps(self, steps: int | None = None, lead_time: Any = None) -> int:
        """Number of output frames from `steps` or `lead_time` (default: the trained T_out)."""
        if steps is not None and lead_time is not None:
            raise UsageError("give either `steps` or `lead_time`, not both")
        months = calendar_months(self.spec)
        if lead_time is not None and months:
            n = parse_calendar_lead(lead_time, months)
        elif lead_time is not None:
            n = parse_lead_time(lead_time, time_step(self.spec))
        elif steps is not None:
            n = int(steps)
        else:
            n = self.t_out
        if n < 1:
            raise UsageError(f"`steps` must be at least 1, got {n}")
        if n > MAX_STEPS:
            raise UsageError(f"`steps` {n} is more than {MAX_STEPS}; forecast in pieces")
        return n

    def check(
        self,
        source: Any,
        *,
        init_time: Any = None,
        var_map: Sequence[str] | Mapping[str, str] | None = None,
        steps: int | None = None,
        lead_time: Any = None,
        coords: Mapping[str, str] | None = None,
    ) -> PreparedInput:
        """Validate `source` only (no compute): what `predict` would use, with notes."""
        self.resolve_steps(steps, lead_time)
        return prepare_input(source, self.spec, init_time=init_time, var_map=var_map, coords=coords)

    # ------------------------------------------------------------------ rollout
    def rollout(
        self, frames: np.ndarray, steps: int, progress: Progress | None = None,
        phases: np.ndarray | None = None,
    ) -> tuple[np.ndarray, list[int], int]:
        """Forecast `steps` frames from physical-unit `frames` (n, T_in, C, H, W).

        Returns (forecast (n, steps, C, H, W) physical units, lead offsets in model steps,
        number of network calls). Frames are kept on an integer timeline (offset 0 = init);
        each call reads the frames at `anchor + rel_in` and writes `anchor + rel_out`,
        then the anchor moves to the last frame written. Observed frames are never
        overwritten by forecasts. `progress` counts (initialisation x network call).
        `phases` (n,): for a climatology-residual network, each initialisation time's index
        in its cycle (:meth:`phases_for`); it moves with the anchor.
        """
        import torch

        rel_in, rel_out = relative_offsets(self.spec)
        mean = np.asarray(self.spec.mean, dtype=np.float32)
        std = np.asarray(self.spec.std, dtype=np.float32)
        if self.spec.normalisation == "none":
            mean, std = np.zeros_like(mean), np.ones_like(std)
        shape = (1, -1, 1, 1)
        valid = self.spec.valid_mask()  # (C, H, W): cells that hold data; the rest is filled, then NaN
        x = fill_missing((frames - mean.reshape(shape)) / std.reshape(shape))
        timeline: dict[int, np.ndarray] = {int(r): x[:, j] for j, r in enumerate(rel_in)}
        leads: list[int] = []
        anchor, calls = 0, 0
        param = next(iter(self.net.parameters()), None)
        device = param.device if param is not None else torch.device("cpu")
        dtype = param.dtype if param is not None else torch.float32
        self.net.eval()
        n_calls = -(-steps // max(1, int(rel_out.max())))  # the anchor moves by max(rel_out) per call
        tick = counted(progress, "predict", n_calls * x.shape[0], "forecasting (initialisations x steps)")
        while len(leads) < steps:
            missing = [int(anchor + r) for r in rel_in if int(anchor + r) not in timeline]
            if missing:
                raise UsageError(
                    f"cannot roll out beyond {len(leads)} steps: this model's input frames "
                    f"(offsets {rel_in.tolist()}) are not all covered by its outputs ({rel_out.tolist()})"
                )
            inp = np.stack([timeline[int(anchor + r)] for r in rel_in], axis=1)
            outs = []
            with torch.inference_mode():
                for b in range(0, inp.shape[0], self.batch_size):
                    t = torch.from_numpy(np.ascontiguousarray(inp[b : b + self.batch_size])).to(device, dtype)
                    extra = {} if phases is None else {
                        "phase": torch.from_numpy(np.asarray(phases[b : b + self.batch_size]) + anchor).to(device)}
                    y = self.net(t, **extra)
                    if isinstance(y, (tuple, list)):
                        y = y[0]
                    outs.append(y.detach().float().cpu().numpy())
                    tick(min(calls, n_calls - 1) * inp.shape[0] + len(inp[: b + self.batch_size]))
            out = np.concatenate(outs, axis=0)
            calls += 1
            if out.shape[1] != rel_out.size or out.shape[2:] != inp.shape[2:]:
                raise DataError(
                    f"{self.ref}: the network returned {tuple(out.shape[1:])}, the data spec says "
                    f"({rel_out.size}, {', '.join(map(str, inp.shape[2:]))}); config and data spec disagree"
                )
            if valid is not None:  # the next call sees masked cells as training did: filled
                out = np.where(valid, out, np.float32(0.0))
            for k, r in enumerate(rel_out):
                off = int(anchor + r)
                if off not in timeline:
                    timeline[off] = out[:, k]
                if off > 0 and off not in leads:
                    leads.append(off)
            anchor = int(anchor + rel_out.max())
        leads = sorted(leads)[:steps]
        y = np.stack([timeline[o] for o in leads], axis=1)
        y = y * std.reshape(shape) + mean.reshape(shape)
        clip = self.spec.clip_range
        if clip:
            y = np.clip(y, float(clip[0]), float(clip[1]))
        if not np.all(np.isfinite(y)):
            raise DataError(f"{self.ref}: the forecast contains non-finite values; the weights may be corrupt")
        if valid is not None:
            y = np.where(valid, y, np.float32(np.nan))  # masked cells (land of a sea field) hold no forecast
        return y.astype(np.float32), leads, calls

    def phases_for(self, init_times: Any) -> np.ndarray | None:
        """Each initialisation time's index in the network's climatology cycle, or None for
        a network without one."""

        if not needs_phase(self.net):
            return None
        step = self.spec.time_step_seconds
        if self.spec.time_kind != "datetime" or not step:
            raise DataError(f"{self.ref}: a climatology-residual model needs a data spec with calendar time steps")
        return phase_of(init_times, float(step), cycle_of(self.net))

    # ------------------------------------------------------------------ predict
    def predict(
        self,
        ds: Any,
        steps: int | None = None,
        lead_time: Any = None,
        init_time: Any = None,
        var_map: Sequence[str] | Mapping[str, str] | None = None,
        *,
        history: str | None = None,
        prepared: PreparedInput | None = None,
        progress: Progress | None = None,
        members: Members | int | None = None,
    ) -> Any:
        """Forecast from `ds` (xarray Dataset/DataArray or a file path): a CF-1.8 Dataset.

        `steps` output frames (or `lead_time`, e.g. "24h"; default T_out), for the last
        input time or each of `init_time`. The result is what `svqcast predict` writes.
        `members` (a count, or `svqcast.forecast.ensemble.Members`): an ensemble of noise or
        lagged members with a `realization` dimension (docs/ensembles.md).
        """
        n_steps = self.resolve_steps(steps, lead_time)
        plan = Members(members) if isinstance(members, int) else members
        if plan is not None:
            plan.check(self.spec.channels)
            if plan.kind == "lagged":
                if prepared is not None and len(prepared.init_times) != 1:
                    raise UsageError("`perturb` lagged makes members for one initialisation; give one `init_time`")
                one = prepared.init_times[-1] if prepared is not None else init_time
                prep0 = prepared or prepare_input(ds, self.spec, init_time=init_time, var_map=var_map)
                inits = lag_inits(self, np.asarray(one if one is not None else prep0.init_times[-1]), plan.count)
                prepared = self._lagged_input(ds if ds is not None else prep0.source, inits, var_map, plan.count)
        prep = prepared or prepare_input(ds, self.spec, init_time=init_time, var_map=var_map)
        phases = self.phases_for(prep.init_times)
        if plan is not None and plan.kind == "noise":
            amplitude, dispersion = self.noise_amplitude(plan), self.noise_dispersion(plan)
            values, leads = noise_members(self, prep.frames, n_steps, plan, amplitude, phases, progress)
            calls, ensemble = -(-n_steps // self.t_out) * plan.count, plan.describe(amplitude.tolist())
            if dispersion is not None:
                values = apply_dispersion(values, dispersion)
                ensemble["dispersion_by_lead"] = dispersion[:, 0].tolist() if dispersion.shape[1] == 1 else \
                    dispersion.tolist()
        elif plan is not None and plan.kind == "lagged":
            raw, leads, calls = self.rollout(prep.frames, n_steps + plan.count - 1, progress, phases)
            values, leads = lagged_members(raw, n_steps), leads[:n_steps]
            prep = dataclasses.replace(prep, init_times=prep.init_times[:1])
            ensemble = plan.describe()
        else:
            values, leads, calls = self.rollout(prep.frames, n_steps, progress, phases)
            ensemble = None
        return self._dataset(values, leads, calls, prep, history, ensemble)

    def noise_amplitude(self, plan: Members) -> np.ndarray:
        """Per-channel noise amplitudes (physical units): the user's, else the model's fitted ones."""
        given = plan.amplitude
        if given is None:
            fitted = (self.meta.get("ensemble") or {}).get("amplitude")
            if not fitted:
                raise UsageError(f"{self.ref} has no fitted noise amplitude; give `noise_amplitude` (physical units, "
                                 "one per channel) or fit one with `svqcast models calibrate`")
            given = [float(a) for a in fitted]
        amp = np.asarray(given, dtype=np.float32)
        return np.broadcast_to(amp, (self.spec.channels,)).copy() if amp.size == 1 else amp

    def noise_dispersion(self, plan: Members) -> np.ndarray | None:
        """The fitted per-lead dispersion (T_fit, C) that goes with the fitted amplitude; None when
        the user gives the amplitude (the factors were fitted for the model's own) or none was fitted."""
        fitted = (self.meta.get("ensemble") or {}).get("dispersion")
        if plan.amplitude is not None or not fitted:
            return None
        try:
            d = np.asarray([fitted[str(ch)] for ch in self.spec.channel_names], dtype=np.float64).T  # (T, C)
        except (KeyError, TypeError, ValueError):
            d = np.zeros(0)
        if d.ndim != 2 or d.size == 0 or not np.isfinite(d).all() or (d <= 0).any():
            raise DataError(f"{self.ref}: config.json `ensemble.dispersion` must hold positive numbers per lead "
                            "for every channel; fit it again with `svqcast models calibrate`")
        return d

    def _lagged_input(self, source: Any, inits: list[Any], var_map: Any, count: int) -> PreparedInput:
        try:
            return prepare_input(source, self.spec, init_time=inits, var_map=var_map)
        except DataError as exc:
            raise DataError(f"a lagged ensemble of {count} members needs the {count - 1} initialisations before "
                            f"{str(inits[0])[:16]} (from {str(inits[-1])[:16]}): {exc}") from None

    def _dataset(self, values: np.ndarray, leads: list[int], calls: int, prep: PreparedInput,
                 history: str | None, ensemble: dict[str, Any] | None) -> Any:
        details = [f"{k} {self.meta[m]}" for k, m in (("preset", "preset"), ("weights sha256", "weights_sha256"))
                   if self.meta.get(m)]
        source = f"svqcast {__version__}; model {self.ref}" + (f" ({', '.join(details)})" if details else "")
        history_line = f"{utc_now()} {history or 'svqcast.Forecaster.predict'}"
        extra = {
            "svqcast_input": prep.source,
            "svqcast_network_calls": int(calls),
            # provenance of the training data: the prepared store's manifest.json sha256
            "svqcast_data_manifest_sha256": self.data_manifest_sha256 or "not recorded",
        }
        if prep.notes:
            extra["svqcast_input_notes"] = "; ".join(prep.notes)
        build = functools.partial(build_forecast_dataset, spec=self.spec, init_times=prep.init_times,
                                  lead_steps=leads, source=source, history=history_line, trained_steps=self.t_out,
                                  model_ref=self.ref, input_metadata=prep.metadata, extra_attrs=extra)
        if ensemble is None:
            return build(values)
        return with_members([build(values[:, m]) for m in range(values.shape[1])], ensemble)


def load_network(ref: str | os.PathLike[str] | None = None) -> tuple[nn.Module, dict[str, Any], Path, str]:
    """The one load path of every command (predict, evaluate, plot, the Python API):
    resolve a zoo name, `hf://org/repo@rev`, checkpoint or run directory (None: the zoo's
    default model), verify the weights' sha256 against the checkpoint's config.json, then
    build the network and load its weights strictly.

    Returns (network in eval mode on the CPU, checkpoint metadata, directory, label).
    """

    label = str(ref) if ref not in (None, "") else default_model_name()
    directory = Path(resolve_checkpoint(label))
    verify_checkpoint_integrity(directory, label)
    net, meta = load_checkpoint(directory)
    return net, meta, directory, label


def load_model(ref: str | os.PathLike[str] | None = None, *, device: str = "cpu") -> Forecaster:
    """A `Forecaster` for a zoo name, `hf://org/repo@rev`, or a checkpoint/run directory.

    None loads the zoo's default model. Weights are verified (sha256) before use.
    """
    net, meta, _, label = load_network(ref)
    data_spec = meta.get("data_spec")
    if not data_spec:
        raise DataError(f"{label}: the checkpoint has no data spec (a converted model?); attach one with "
                        "`svqcast models convert openstl FILE --preset P --data DATASET -o DIR`")
    return Forecaster(net=net.to(device), spec=DataSpec.from_dict(dict(data_spec)), ref=label, meta=meta)
