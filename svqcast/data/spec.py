"""`DataSpec`: the self-description of a dataset that travels with every checkpoint.

The training engineer stores `spec.to_dict()` in a checkpoint's `config.json` (`data_spec`),
the predict side reads it back with `DataSpec.from_dict()` to validate user input, normalise
it with the *training* statistics and de-normalise forecasts. It is therefore plain JSON:
lists, strings, numbers and null, never numpy types.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from svqcast.data.masks import unpack_mask
from svqcast.errors import DataError

SPEC_VERSION = 1


@dataclass
class DataSpec:
    """What a model trained on a dataset needs to know about its inputs.

    `mean`/`std` are the per-channel values that `WindowDataset` subtracts/divides by
    (training-split statistics for z-scored datasets; 0/1 for image data that is already
    in [0, 1]). `idx_in`/`idx_out` are offsets in stored time steps relative to the last
    input frame, e.g. `[-11..0]` and `[1..12]` for WeatherBench-S.
    """

    dataset: str
    kind: str  # "weather" | "flow" | "video"
    variables: list[str]  # distinct variables in channel order (WeatherBench-M: r, t, u, v for 12 channels)
    units: list[str]  # per channel
    channel_names: list[str]  # per channel
    dims: list[str]  # ["lat", "lon"] or ["y", "x"]
    coords: dict[str, list[float]]  # values of dims[0] and dims[1]
    time_step_seconds: float | None  # between stored frames; None if unknown
    t_in: int
    t_out: int
    mean: list[float]
    std: list[float]
    idx_in: list[int]
    idx_out: list[int]
    clip_range: list[float] | None = None  # [0, 1] for image data
    normalisation: str = "zscore"  # "zscore" | "none"
    sample_rule: str = "svqcast"  # "svqcast" | "official" (see docs/data.md)
    split_source: str = "svqcast"  # "svqcast" (real validation split) | "official" (val = test)
    time_kind: str = "datetime"  # "datetime" (ds.times -> datetime64[ns]) | "frame" (integer frame index)
    spec_version: int = SPEC_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    # rows/columns the network pads at the bottom/right so H and W divide its encoder stride;
    # every output (loss, scores, forecasts) is cropped back, so padded cells are never scored
    padding: list[int] = field(default_factory=lambda: [0, 0])
    # the cells of each channel that hold data (svqcast.data.masks: packed); None: all of them
    mask: dict[str, Any] | None = None
    # per channel: (variable, level) for channels cut from a variable on levels ("t@850"); the
    # level coordinate's name and units, so forecasts write the level dimension back
    levels: dict[str, Any] | None = None

    def valid_mask(self) -> np.ndarray | None:
        """(C, H, W) True where a channel holds data; None when every cell does."""
        return unpack_mask(self.mask, (self.channels, *self.shape), f"data spec of {self.dataset}")

    @property
    def channels(self) -> int:
        return len(self.channel_names)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.coords[self.dims[0]]), len(self.coords[self.dims[1]])

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    def for_network(self, stride: int) -> DataSpec:
        """This spec with the padding a network of encoder stride `stride` applies to the grid."""
        h, w = self.shape
        return dataclasses.replace(self, padding=[-h % max(1, stride), -w % max(1, stride)])

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataSpec:
        """Rebuild a spec; unknown keys (from a newer svqcast) are ignored, missing
        required keys are a DataError naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        required = {
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        missing = sorted(required - set(data))
        if missing:
            raise DataError(f"data spec is missing {', '.join(missing)}: the checkpoint's data_spec is incomplete")
        kwargs = {k: v for k, v in data.items() if k in names}
        spec = cls(**kwargs)
        spec.validate()
        return spec

    def validate(self) -> None:
        c = len(self.channel_names)
        for name in ("units", "mean", "std"):
            if len(getattr(self, name)) != c:
                raise DataError(f"data spec: {name} has {len(getattr(self, name))} entries for {c} channels")
        if len(self.idx_in) != self.t_in or len(self.idx_out) != self.t_out:
            raise DataError("data spec: idx_in/idx_out lengths do not match t_in/t_out")
        if len(self.dims) != 2 or any(d not in self.coords for d in self.dims):
            raise DataError(f"data spec: dims {self.dims} need coordinates in coords")
        if any(s <= 0 for s in self.std):
            raise DataError("data spec: std must be positive")


def _plain(obj: Any) -> Any:
    """numpy scalars/arrays -> Python types so json.dumps never fails."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return obj


# --------------------------------------------------------------------------- spec access


def channel_names(spec: DataSpec) -> list[str]:
    return [str(n) for n in (spec.channel_names or spec.variables)]


def channel_levels(spec: DataSpec) -> list[tuple[str, float | None]]:
    """(variable, level) of every channel: ``("t", 850.0)`` for a channel cut from a variable on
    levels, ``(name, None)`` for the others."""
    names = channel_names(spec)
    pairs = (spec.levels or {}).get("channels")
    if not pairs:
        return [(n, None) for n in names]
    return [(str(v), None if lv is None else float(lv)) for v, lv in pairs]


def relative_offsets(spec: DataSpec) -> tuple[np.ndarray, np.ndarray]:
    """Input and output frame offsets relative to the initialisation frame (offset 0).

    The spec's `idx_in`/`idx_out` may be absolute (0..11 / 12..23, OpenSTL style) or already
    relative (-11..0 / 1..12); anchoring on the last input frame makes both the same.
    """
    rel_in = np.asarray(spec.idx_in, dtype=np.int64)
    rel_out = np.asarray(spec.idx_out, dtype=np.int64)
    if rel_in.size == 0 or rel_out.size == 0:
        raise DataError("the model's data spec has no input/output frames (t_in/t_out); re-export the checkpoint")
    anchor = int(rel_in.max())
    return rel_in - anchor, rel_out - anchor


def time_step(spec: DataSpec) -> np.timedelta64 | None:
    """The model's step as a duration, or None for frame data (its leads are frame counts, even
    when a frame rate is known: 1/25 s is no whole number of seconds)."""
    seconds = spec.time_step_seconds
    if seconds in (None, 0) or spec.time_kind == "frame":
        return None
    return np.timedelta64(int(round(float(seconds))), "s")


def frames_allowed(spec: DataSpec) -> bool:
    """Frame-indexed input (no calendar) is accepted only for a model trained on frames."""
    return spec.time_kind == "frame" or time_step(spec) is None
