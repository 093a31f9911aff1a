"""The dataset catalog: one `DatasetEntry` per paper dataset and per embedded real sample.

A catalog entry is data, not code: `catalog.toml` next to this module holds name, variables,
units, grid, time step, frame counts, sample offsets (`idx_in`/`idx_out` in stored steps),
splits (ours and the official ones), upstream source, size, citation and licence; it is read
into the dataclasses below and validated at import. User datasets (`svqcast prepare PATH
--name NAME`) come from the data root's user catalog (`svqcast.data.usercatalog`), so
`get_entry` resolves both ("a name is the entry point").
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from svqcast.data.entry import DatasetEntry, Variable, entry_from_dict
from svqcast.data.usercatalog import user_entries, user_entry
from svqcast.errors import SvqcastError, UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

WB2_HTTPS = "https://storage.googleapis.com/weatherbench2/datasets/era5/1959-2023_01_10-6h-64x32_equiangular_conservative.zarr"


def _build() -> dict[str, DatasetEntry]:
    """Read catalog.toml (shipped with the package) into entries, validated."""
    path = Path(__file__).with_name("catalog.toml")
    with path.open("rb") as fh:
        tables = tomllib.load(fh)["datasets"]
    out = {}
    for name, table in tables.items():
        try:
            out[name] = entry_from_dict({"name": name, **table})
        except (TypeError, ValueError) as exc:
            raise SvqcastError(f"{path}: dataset {name!r} is invalid ({exc})") from None
    return out


CATALOG: dict[str, DatasetEntry] = _build()
PAPER_DATASETS = ("weatherbench-s-t2m", "weatherbench-s-r", "weatherbench-s-uv10", "weatherbench-s-tcc",
                  "weatherbench-m", "taxibj", "kth", "kitticaltech", "human36m")


def get_entry(name: str, root: str | os.PathLike[str] | None = None) -> DatasetEntry:
    """A catalog entry, or a user dataset registered under the data root `root`."""
    if name in CATALOG:
        return CATALOG[name]
    entry = user_entry(name, root)
    if entry is not None:
        return entry
    raise UsageError(
        f"unknown dataset {name!r}: choose one of {', '.join(CATALOG)} (see `svqcast datasets list`), "
        "or prepare your own file with `svqcast prepare PATH --name NAME`"
    )


def malformed_user_entries(root: str | os.PathLike[str] | None = None) -> list[str]:
    """One line per user-catalog entry that cannot be read (`datasets list` shows them as notes)."""
    return user_entries(root)[1]


def list_entries(root: str | os.PathLike[str] | None = None) -> list[DatasetEntry]:
    """Catalog entries, then the user datasets of `root` (marked by `is_user`)."""
    return list(CATALOG.values()) + user_entries(root)[0]


__all__ = ["CATALOG", "PAPER_DATASETS", "WB2_HTTPS", "DatasetEntry", "Variable", "entry_from_dict", "get_entry",
           "list_entries", "malformed_user_entries"]
