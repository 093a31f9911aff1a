"""A dataset's description as data: `DatasetEntry` and its variables, validated from a table.

The paper catalog (`catalog.toml`) and the user catalog (`user-datasets.json`) both hold
tables of these fields; `entry_from_dict` turns either into a frozen, type-checked entry.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Variable:
    """One upstream variable. `folder` is WeatherBench's long name (directory and file
    prefix), `name` the netCDF variable inside, `level` a pressure level (hPa) or None."""

    name: str
    long_name: str
    units: str
    folder: str = ""
    level: int | None = None
    wb2_name: str = ""  # variable name in the WeatherBench 2 zarr

    @property
    def channel(self) -> str:
        return f"{self.name}{self.level}" if self.level is not None else self.name


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    title: str
    kind: str  # weather | flow | video
    variables: tuple[Variable, ...]
    dims: tuple[str, str]
    shape: tuple[int, int]  # H, W
    grid: str  # human description
    time_step_seconds: float | None
    t_in: int
    t_out: int
    idx_in: tuple[int, ...]
    idx_out: tuple[int, ...]
    splits: dict[str, str]  # our splits: split -> description
    official_splits: dict[str, str]  # the official code's splits
    select: dict[str, Any]  # machine-readable split selection (kind-specific)
    official_select: dict[str, Any]
    source: str
    urls: tuple[str, ...]
    size: str
    citation: str
    licence: str
    embedded: bool = False
    sample_file: str | None = None  # file in svqcast/data/samples
    subsample_step: int = 1  # raw steps between stored frames (WeatherBench-M: 6)
    sample_stride: int = 1  # stored steps between successive samples (KTH: 30 / 3)
    normalisation: str = "zscore"  # zscore | none
    clip_range: tuple[float, float] | None = None
    notes: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    builder: str = ""  # key of svqcast.data.builders.BUILDERS (catalog datasets); "" for user datasets

    @property
    def channel_names(self) -> list[str]:
        return [v.channel for v in self.variables]

    @property
    def units(self) -> list[str]:
        return [v.units for v in self.variables]

    @property
    def is_user(self) -> bool:
        """Prepared from the user's own files (registered in the data root's user catalog)."""
        return bool(self.extra.get("user"))

    @property
    def time_kind(self) -> str:
        """"frame" (integer frame index) for video and for data without timestamps."""
        return str(self.extra.get("time_kind", "frame" if self.kind == "video" else "datetime"))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["channel_names"] = self.channel_names
        d["units"] = self.units
        d["variables"] = [dataclasses.asdict(v) for v in self.variables]
        d["user"] = self.is_user
        return d


_TUPLES = ("dims", "shape", "idx_in", "idx_out", "urls", "notes", "clip_range")
_FIELDS = {f.name: f for f in dataclasses.fields(DatasetEntry)}
_REQUIRED = {n for n, f in _FIELDS.items()
             if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING} - {"time_step_seconds"}
_VARIABLE_FIELDS = {f.name for f in dataclasses.fields(Variable)}


def entry_from_dict(data: dict[str, Any]) -> DatasetEntry:
    """A validated DatasetEntry from a TOML/JSON table (ValueError naming the bad key)."""
    unknown = sorted(set(data) - set(_FIELDS))
    missing = sorted(_REQUIRED - set(data))
    if unknown or missing:
        raise ValueError(f"unknown keys {unknown}" if unknown else f"missing keys {missing}")
    kw = dict(data)
    kw.setdefault("time_step_seconds", None)
    for name in _TUPLES:
        if kw.get(name) is not None:
            kw[name] = tuple(kw[name])
    variables = []
    for v in kw["variables"]:
        if not isinstance(v, dict) or set(v) - _VARIABLE_FIELDS:
            raise ValueError(f"variable {v!r}: keys must be among {sorted(_VARIABLE_FIELDS)}")
        variables.append(Variable(**v))
    kw["variables"] = tuple(variables)
    entry = DatasetEntry(**kw)
    _check_types(entry)
    return entry


def _check_types(e: DatasetEntry) -> None:
    if e.kind not in ("weather", "flow", "video"):
        raise ValueError(f"kind {e.kind!r}: use weather, flow or video")
    if len(e.dims) != 2 or len(e.shape) != 2 or not all(isinstance(v, int) and v > 0 for v in e.shape):
        raise ValueError(f"dims {e.dims} / shape {e.shape}: need two names and two positive integers")
    if len(e.idx_in) != e.t_in or len(e.idx_out) != e.t_out or not e.variables:
        raise ValueError("idx_in/idx_out must have t_in/t_out entries and variables must not be empty")
    if e.normalisation not in ("zscore", "none"):
        raise ValueError(f"normalisation {e.normalisation!r}: use zscore or none")
    for name in ("splits", "official_splits", "select", "official_select", "extra"):
        if not isinstance(getattr(e, name), dict):
            raise ValueError(f"{name} must be a table")
