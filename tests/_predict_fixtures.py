"""Shared helpers for the predict/zoo tests (test_io, test_hub, test_predict_cli, test_plot).

A *tiny* real checkpoint (SimVP-gSTA, ~27k parameters, random weights) with the data spec
of the embedded ERA5 sample: enough to exercise validation, normalisation, roll-out and
writing without training anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from svqcast.data.spec import DataSpec

SAMPLE = Path(__file__).resolve().parents[1] / "svqcast" / "data" / "samples" / "era5_uk_t2m_2019-03.nc"


def open_sample() -> Any:
    import xarray as xr

    with xr.open_dataset(SAMPLE) as ds:
        return ds.load()


def era5_spec(ds: Any, **changes: Any) -> DataSpec:
    """The DataSpec of the embedded ERA5 sample (statistics of its first 23 days);
    `changes` replace fields, e.g. `t_out=6, idx_out=[1, ..., 6]`."""
    train = ds["t2m"].sel(time=slice("2019-03-01", "2019-03-23")).values.astype(np.float64)
    fields = {
        "dataset": "era5-uk-t2m",
        "kind": "weather",
        "variables": ["t2m"],
        "units": ["K"],
        "channel_names": ["t2m"],
        "dims": ["lat", "lon"],
        "coords": {"lat": ds["lat"].values.astype(float).tolist(), "lon": ds["lon"].values.astype(float).tolist()},
        "time_step_seconds": 3600.0,
        "t_in": 12,
        "t_out": 12,
        "mean": [float(train.mean())],
        "std": [float(train.std())],
        "idx_in": list(range(-11, 1)),
        "idx_out": list(range(1, 13)),
    }
    fields.update(changes)
    return DataSpec.from_dict(fields)


def tiny_config() -> dict[str, Any]:
    from svqcast.config import load_config

    return load_config({
        "extends": "_defaults",
        "model": {
            "in_shape": [12, 1, 32, 48], "hid_S": 4, "hid_T": 8, "N_S": 2, "N_T": 2,
            "translator": "gsta", "quantizer": "none", "mlp_ratio": 2.0,
        },
    })


def make_tiny_checkpoint(directory: Path, ds: Any | None = None, seed: int = 0) -> Path:
    import torch

    from svqcast.models.factory import build_model_from_config
    from svqcast.zoo.checkpoint import save_checkpoint

    ds = open_sample() if ds is None else ds
    cfg = tiny_config()
    torch.manual_seed(seed)
    net = build_model_from_config(cfg)
    save_checkpoint(directory, net, cfg, era5_spec(ds).to_dict(), provenance={"seed": seed}, card="# tiny\n")
    return directory
