"""What `svqcast evaluate` adds for precipitation and radar data.

For a dataset whose channels are precipitation (`events.is_precipitation`), evaluate reports
POD, FAR, CSI, ETS, frequency bias and FSS at default thresholds (0.1, 1 and 5 mm/h, converted
to the data's accumulation per step) and scales (1, 5 and 15 cells) unless told others, and
scores the standard nowcasting reference, optical-flow extrapolation, next to persistence.
Any dataset gets the same scores when thresholds are given (on every channel, which must then
share one unit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from svqcast.errors import UsageError
from svqcast.verify import nowcast
from svqcast.verify.events import (
    DEFAULT_SCALES,
    DEFAULT_THRESHOLDS,
    EventScores,
    is_precipitation,
    parse_scales,
    parse_thresholds,
)

EXTRAPOLATION = "extrapolation"  # the reference's name in reports


@dataclass
class EventRequest:
    """The user's `thresholds` and `fss_scales` (None: the defaults for precipitation data)."""

    thresholds: str | Sequence[str] | None = None
    fss_scales: str | Sequence[int] | None = None

    @staticmethod
    def precipitation(spec: Any) -> list[int]:
        return [i for i, name in enumerate(spec.channel_names) if is_precipitation(str(name))]

    def channels(self, spec: Any) -> list[int]:
        """The channels scored: the precipitation ones, or every channel when thresholds are given
        for data without precipitation."""
        rain = self.precipitation(spec)
        if rain or self.thresholds is None:
            return rain
        return list(range(len(spec.channel_names)))

    def extrapolation(self, spec: Any, notes: list[str]) -> bool:
        """Whether to score the optical-flow reference: precipitation on a grid, >= 2 input frames."""
        if not self.precipitation(spec) or int(spec.t_in) < 2:
            return False
        if not nowcast.available():
            notes.append("the optical-flow extrapolation reference is not scored: pip install 'svqcast[nowcast]'")
            return False
        return True

    def accumulators(self, spec: Any, forecasts: Sequence[str],
                     notes: list[str]) -> tuple[list[int], dict[str, EventScores]]:
        channels = self.channels(spec)
        if not channels:
            return [], {}
        units = {str(spec.units[c]) for c in channels}
        if len(units) > 1:
            raise UsageError(f"`thresholds` apply to one unit; the channels are in {', '.join(sorted(units))}")
        given = self.thresholds if self.thresholds is not None else list(DEFAULT_THRESHOLDS)
        names = ", ".join(str(spec.channel_names[c]) for c in channels)
        thresholds = parse_thresholds(given, units.pop(), spec.time_step_seconds, names)
        scales = parse_scales(self.fss_scales) if self.fss_scales is not None else list(DEFAULT_SCALES)
        shape = (len(spec.coords[spec.dims[0]]), len(spec.coords[spec.dims[1]]))
        made = {f: EventScores(thresholds, scales, len(spec.channel_names), int(spec.t_out), shape)
                for f in forecasts}
        dropped = next(iter(made.values())).dropped
        if dropped:
            notes.append(f"FSS scales {dropped} exceed the {shape[0]}x{shape[1]} grid: not scored")
        return channels, made


__all__ = ["EXTRAPOLATION", "EventRequest"]
