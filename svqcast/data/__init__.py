"""Datasets: catalog, downloads, readers, preparation to a standard store, and windows.

The data -> training contract (docs/architecture.md):

    from svqcast.data import get_split_dataset, DataSpec
    ds = get_split_dataset("era5-uk-t2m", "train")
    x, y = ds[0]            # float32 (T_in, C, H, W), (T_out, C, H, W), z-scored with TRAIN stats
    ds.times(0)             # (input_times, target_times), datetime64[ns] or frame indices
    ds.spec.to_dict()       # JSON for the checkpoint's data_spec
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from svqcast.data.spec import DataSpec

if TYPE_CHECKING:  # pragma: no cover
    from svqcast.data.windows import WindowDataset

__all__ = ["DataSpec", "get_split_dataset", "list_datasets", "dataset_info", "prepare", "prepare_path"]


def get_split_dataset(name: str, split: str, **kwargs: Any) -> WindowDataset:
    """See `svqcast.data.loading.get_split_dataset` (imports torch lazily)."""
    from svqcast.data.loading import get_split_dataset as _get

    return _get(name, split, **kwargs)


def list_datasets(root: Any = None) -> list[dict[str, Any]]:
    """Catalog datasets, then the user datasets of the data root (`user: true`)."""
    from svqcast.data.catalog import list_entries

    return [e.to_dict() for e in list_entries(root)]


def dataset_info(name: str, root: Any = None) -> dict[str, Any]:
    """A dataset's catalog entry; a user dataset's also carries its training statistics."""
    from svqcast.data.catalog import get_entry

    entry = get_entry(name, root)
    info = entry.to_dict()
    if entry.is_user:
        from svqcast.data.storedir import STATS, prepared_dir

        path = prepared_dir(name, root) / STATS
        if path.is_file():

            stats = json.loads(path.read_text())
            info["stats"] = {k: stats.get(k) for k in ("computed_on", "channels", "mean", "std", "count_per_channel")}
    return info


def prepare(name: str, root: Any = None, **kwargs: Any) -> Any:
    from svqcast.data.prepare import prepare as _prepare

    return _prepare(name, root, **kwargs)


def prepare_path(source: str, name: str, **kwargs: Any) -> Any:
    """Your own file (netCDF, zarr, GRIB, .npy, video, images) as dataset `name`; see
    `svqcast.data.userprep.prepare_path` for the options (the CLI's `prepare PATH --name`)."""
    from svqcast.data.userprep import prepare_path as _prepare_path

    return _prepare_path(source, name, **kwargs)
