"""Datasets: catalog, downloads, readers, preparation to a standard store, and windows.

The data -> training contract (notes/contracts.md):

    from svqcast.data import get_split_dataset, DataSpec
    ds = get_split_dataset("era5-uk-t2m", "train")
    x, y = ds[0]            # float32 (T_in, C, H, W), (T_out, C, H, W), z-scored with TRAIN stats
    ds.times(0)             # (input_times, target_times), datetime64[ns] or frame indices
    ds.spec.to_dict()       # JSON for the checkpoint's data_spec
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from svqcast.data.spec import DataSpec

if TYPE_CHECKING:  # pragma: no cover
    from svqcast.data.windows import WindowDataset

__all__ = ["DataSpec", "get_split_dataset", "list_datasets", "dataset_info", "prepare"]


def get_split_dataset(name: str, split: str, **kwargs: Any) -> WindowDataset:
    """See `svqcast.data.loading.get_split_dataset` (imports torch lazily)."""
    from svqcast.data.loading import get_split_dataset as _get

    return _get(name, split, **kwargs)


def list_datasets() -> list[dict[str, Any]]:
    from svqcast.data.catalog import list_entries

    return [e.to_dict() for e in list_entries()]


def dataset_info(name: str) -> dict[str, Any]:
    from svqcast.data.catalog import get_entry

    return get_entry(name).to_dict()


def prepare(name: str, root: Any = None, **kwargs: Any) -> Any:
    from svqcast.data.prepare import prepare as _prepare

    return _prepare(name, root, **kwargs)
