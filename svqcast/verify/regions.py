"""WeatherBench2's named verification regions, as cell masks of a latitude/longitude grid.

The bounds are WeatherBench2's (its evaluation script's default regions), inclusive at both
ends, longitudes in degrees east on [0, 360) whatever the grid's own convention; the region
names are WeatherBench2's too, so a results file lays next to one of theirs. A region is
scored as WeatherBench2 scores it: the latitude weights of its cells, renormalised over the
region (and over the cells that are valid there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from svqcast.errors import DataError, UsageError


@dataclass(frozen=True)
class Region:
    """Latitude bands (any of them) and longitude ranges (any of them; east > west, or a range
    across 0 E given as two)."""

    name: str
    title: str
    lat: tuple[tuple[float, float], ...] = ((-90.0, 90.0),)
    lon: tuple[tuple[float, float], ...] = ((0.0, 360.0),)

    def mask(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """(H, W) True where the cell centre lies in the region."""
        la = np.asarray(lat, dtype=np.float64)[:, None]
        lo = np.mod(np.asarray(lon, dtype=np.float64), 360.0)[None, :]
        in_lat = np.zeros(la.shape, dtype=bool)
        for lo_, hi in self.lat:
            in_lat |= (la >= lo_) & (la <= hi)
        in_lon = np.zeros(lo.shape, dtype=bool)
        for west, east in self.lon:
            in_lon |= (lo >= west) & (lo <= east)
        return in_lat & in_lon

    def bounds(self) -> str:
        lats = " or ".join(f"{a:g}..{b:g}" for a, b in self.lat)
        lons = " or ".join(f"{a:g}..{b:g}" for a, b in self.lon)
        return f"lat {lats}, lon {lons} E"


REGIONS: dict[str, Region] = {r.name: r for r in (
    Region("global", "whole grid"),
    Region("tropics", "tropics", ((-20.0, 20.0),)),
    Region("extra-tropics", "extra-tropics", ((-90.0, -20.0), (20.0, 90.0))),
    Region("northern-hemisphere", "northern extra-tropics", ((20.0, 90.0),)),
    Region("southern-hemisphere", "southern extra-tropics", ((-90.0, -20.0),)),
    Region("europe", "Europe", ((35.0, 75.0),), ((347.5, 360.0), (0.0, 42.5))),
    Region("north-america", "North America", ((25.0, 60.0),), ((240.0, 285.0),)),
    Region("north-atlantic", "North Atlantic", ((25.0, 65.0),), ((290.0, 350.0),)),
    Region("north-pacific", "North Pacific", ((25.0, 60.0),), ((145.0, 230.0),)),
    Region("east-asia", "East Asia", ((25.0, 60.0),), ((102.5, 150.0),)),
    Region("ausnz", "Australia and New Zealand", ((-45.0, -12.5),), ((120.0, 175.0),)),
    Region("arctic", "Arctic", ((60.0, 90.0),)),
    Region("antarctic", "Antarctic", ((-90.0, -60.0),)),
)}
#: other spellings a user may type
ALIASES = {"northern-extra-tropics": "northern-hemisphere", "southern-extra-tropics": "southern-hemisphere",
           "extratropics": "extra-tropics", "nh": "northern-hemisphere", "sh": "southern-hemisphere"}


def parse_regions(names: str | Sequence[str] | None) -> list[str]:
    """`"europe,tropics"` (or a list, or "all") -> canonical region names; default ["global"]."""
    if names is None:
        return ["global"]
    items = [p.strip().lower() for text in ([names] if isinstance(names, str) else names)
             for p in str(text).split(",") if p.strip()]
    if items == ["all"]:
        return list(REGIONS)
    out: list[str] = []
    for item in items:
        name = ALIASES.get(item, item)
        if name not in REGIONS:
            raise UsageError(f"`region` {item!r}: unknown; choose from {', '.join(REGIONS)} or all")
        if name not in out:
            out.append(name)
    return out or ["global"]


def region_masks(names: Sequence[str], lat: np.ndarray | None, lon: np.ndarray | None,
                 shape: tuple[int, int], *, asked: bool) -> tuple[dict[str, np.ndarray], list[str]]:
    """{region: (H, W) mask} for the regions that hold at least one cell of the grid, and notes on
    the others. A region the user named that misses the grid is an error (`asked`); with "all",
    the missing ones are only noted. Grids without latitude/longitude have only "global"."""
    masks: dict[str, np.ndarray] = {}
    notes: list[str] = []
    for name in names:
        if name == "global":
            masks[name] = np.ones(shape, dtype=bool)
            continue
        if lat is None or lon is None:
            raise UsageError(f"`region` {name}: the grid has no latitude/longitude; only global can be scored")
        mask = REGIONS[name].mask(lat, lon)
        if mask.any():
            masks[name] = mask
        elif asked:
            raise DataError(f"`region` {name} ({REGIONS[name].bounds()}) holds no cell of the grid "
                            f"(lat {float(np.min(lat)):g}..{float(np.max(lat)):g}, "
                            f"lon {float(np.min(lon)):g}..{float(np.max(lon)):g}); choose another region")
        else:
            notes.append(f"region {name} holds no cell of the grid: not scored")
    return masks, notes


def describe_regions(names: Sequence[str]) -> dict[str, str]:
    """{name: "title: bounds"} for the report."""
    return {n: f"{REGIONS[n].title}: {REGIONS[n].bounds()}" for n in names}


__all__ = ["ALIASES", "REGIONS", "Region", "describe_regions", "parse_regions", "region_masks"]
