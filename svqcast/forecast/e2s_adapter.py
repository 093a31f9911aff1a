"""svqcast forecasters as earth2studio prognostic models (the optional `earth2studio` extra).

`Prognostic` presents a `Forecaster` through earth2studio's `PrognosticModel` protocol: input
coordinates (the model's T_in past steps as `lead_time`, its variables in earth2studio's
lexicon where a name maps, its grid), output coordinates one model step ahead, a call that
steps once, and an iterator that yields the initial condition and then one step at a time.
Underneath, every network call produces the model's T_out steps at once (the same rollout as
`svqcast predict`: normalised with the training statistics, outputs fed back as inputs), and
the iterator hands them out one by one, so earth2studio's workflows (`run.deterministic`) run a
svqcast model like any of theirs and write what `svqcast predict` writes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from svqcast.data.spec import channel_levels, relative_offsets, time_step
from svqcast.errors import UsageError

#: svqcast / WeatherBench2 names -> earth2studio's lexicon (surface fields)
SURFACE = {"t2m": "t2m", "2m_temperature": "t2m", "u10": "u10m", "10m_u_component_of_wind": "u10m",
           "v10": "v10m", "10m_v_component_of_wind": "v10m", "msl": "msl", "mean_sea_level_pressure": "msl",
           "sp": "sp", "surface_pressure": "sp", "tcwv": "tcwv", "total_column_water_vapour": "tcwv",
           "tp": "tp", "total_precipitation": "tp", "sst": "sst", "sea_surface_temperature": "sst"}
#: variables on pressure levels -> earth2studio's short name, to which the level is appended (t850)
LEVELLED = {"t": "t", "temperature": "t", "z": "z", "geopotential": "z", "u": "u", "u_component_of_wind": "u",
            "v": "v", "v_component_of_wind": "v", "q": "q", "specific_humidity": "q", "r": "r",
            "relative_humidity": "r"}


def e2s_names(spec: Any) -> list[str]:
    """Each channel's name in earth2studio's lexicon where one maps (t2m, u10m, t850), else its own."""
    out = []
    for var, level in channel_levels(spec):
        key = var.lower()
        if level is None:
            out.append(SURFACE.get(key, var))
        else:
            out.append(f"{LEVELLED[key]}{level:g}" if key in LEVELLED else f"{var}{level:g}")
    return out


class Prognostic(torch.nn.Module):
    """An earth2studio prognostic model backed by a svqcast `Forecaster` (one model step per call)."""

    def __init__(self, forecaster: Any) -> None:
        super().__init__()
        self.fc = forecaster
        spec = forecaster.spec
        step = time_step(spec)
        if step is None or spec.dims[0] not in ("lat", "latitude"):
            raise UsageError("earth2studio runs models with a fixed time step on a latitude/longitude grid")
        self.step = step.astype("timedelta64[ns]")
        self.variables = np.array(e2s_names(spec))
        self.lat = np.asarray(spec.coords[spec.dims[0]], dtype=np.float64)
        self.lon = np.asarray(spec.coords[spec.dims[1]], dtype=np.float64)
        self.t_in = int(spec.t_in)
        rel_in, _ = relative_offsets(spec)
        if rel_in.tolist() != list(range(-(self.t_in - 1), 1)):
            raise UsageError("earth2studio steps a model whose inputs are consecutive steps; this one reads "
                             f"offsets {rel_in.tolist()}")

    def input_coords(self) -> OrderedDict[str, np.ndarray]:
        lead = np.arange(-(self.t_in - 1), 1) * self.step
        return OrderedDict(batch=np.empty(0), time=np.empty(0), lead_time=lead, variable=self.variables,
                           lat=self.lat, lon=self.lon)

    def output_coords(self, input_coords: OrderedDict[str, np.ndarray]) -> OrderedDict[str, np.ndarray]:
        for key in ("variable", "lat", "lon"):
            got = np.asarray(input_coords[key])
            want = getattr(self, "variables" if key == "variable" else key)
            if got.shape != want.shape or (key == "variable" and list(got) != list(want)) or (
                    key != "variable" and not np.allclose(got, want)):
                raise ValueError(f"input coordinate '{key}' does not match the model's")
        out = OrderedDict((k, np.asarray(v)) for k, v in input_coords.items())
        out["lead_time"] = np.asarray(input_coords["lead_time"])[-1:] + self.step
        return out

    def _frames(self, x: torch.Tensor) -> tuple[np.ndarray, tuple[int, ...]]:
        """(n, T_in, C, H, W) numpy frames from (..., lead_time, variable, lat, lon)."""
        lead = x.shape[-4:]
        batch = tuple(x.shape[:-4])
        return x.detach().cpu().numpy().reshape(-1, *lead).astype(np.float32), batch

    def __call__(self, x: torch.Tensor, coords: OrderedDict[str, np.ndarray]) -> tuple[torch.Tensor, Any]:
        """One model step from the T_in past steps."""
        frames, batch = self._frames(x)
        values, _, _ = self.fc.rollout(frames, 1)
        out = torch.from_numpy(values[:, :1]).reshape(*batch, 1, *values.shape[2:]).to(x.device)
        return out, self.output_coords(coords)

    def create_iterator(self, x: torch.Tensor,
                        coords: OrderedDict[str, np.ndarray]) -> Iterator[tuple[torch.Tensor, Any]]:
        """The initial condition, then one model step at a time, indefinitely (each network call
        forecasts T_out steps; the last T_in known steps are the next call's input)."""
        frames, batch = self._frames(x)
        lead0 = np.asarray(coords["lead_time"])[-1]
        first = OrderedDict((k, np.asarray(v)) for k, v in coords.items())
        first["lead_time"] = np.array([lead0])
        yield x[..., -1:, :, :, :], first
        history, k = frames, 0
        while True:
            ahead, _, _ = self.fc.rollout(history, int(self.fc.spec.t_out))
            for j in range(ahead.shape[1]):
                k += 1
                step_coords = OrderedDict((key, np.asarray(v)) for key, v in coords.items())
                step_coords["lead_time"] = np.array([lead0 + k * self.step])
                frame = torch.from_numpy(ahead[:, j:j + 1]).reshape(*batch, 1, *ahead.shape[2:])
                yield frame.to(x.device), step_coords
            history = np.concatenate([history, ahead], axis=1)[:, -self.t_in:]


__all__ = ["LEVELLED", "SURFACE", "Prognostic", "e2s_names"]
