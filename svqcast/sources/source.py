"""`Source`: a user input opened lazily, ready to be written as a standard store.

The type every reader of `svqcast.sources` returns for `svqcast prepare`; nothing is loaded
until `frames[a:b]` asks for a block, so preparing a file larger than memory streams.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

URL_HINT = "check the network and the URL (a zarr store's top folder), or download the store and prepare the copy"


@dataclass
class Source:
    """A user input ready to be written as a store: `frames[a:b]` -> (n, C, H, W)."""

    path: str
    kind: str  # "weather" (fields) | "video" (frames in [0, 1])
    frames: Any
    times: np.ndarray  # datetime64[ns] or int64 frame indices
    channels: list[str]
    units: list[str]
    long_names: list[str]
    dims: tuple[str, str]
    coords: dict[str, np.ndarray]
    coord_units: dict[str, str]
    dtype: str = "float32"  # or "uint8" (frames stored as counts, scale 1/255)
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fps: float | None = None
    cuts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # frames where a new scene starts
    levels: dict[str, Any] | None = None  # channels cut from variables on levels (DataSpec.levels)

    @property
    def is_datetime(self) -> bool:
        return np.issubdtype(self.times.dtype, np.datetime64)

