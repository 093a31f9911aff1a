"""Reference forecasts (svqcast/refcast.py) against a float64 oracle on the raw sample file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from _predict_fixtures import open_sample


def test_same_hour_yesterday_and_persistence_match_a_direct_computation(tmp_path: Path) -> None:
    from svqcast.data import get_split_dataset
    from svqcast.refcast import reference_scores

    got = reference_scores("era5-uk-t2m", "test", root=tmp_path)
    obs = open_sample()["t2m"].astype(np.float64)
    ds = get_split_dataset("era5-uk-t2m", "test", root=tmp_path)
    err_y, err_p = [], []
    for i in range(len(ds)):
        tin, tout = ds.times(i)
        truth = obs.sel(time=tout).values
        err_y.append(truth - obs.sel(time=tout - np.timedelta64(24, "h")).values)
        err_p.append(truth - obs.sel(time=tin[-1]).values[None])
    err_y, err_p = np.stack(err_y), np.stack(err_p)
    assert got["samples"] == len(ds) and got["skipped"] == 0
    for name, err in (("same_hour_yesterday", err_y), ("persistence", err_p)):
        s = got["scores"][name]
        assert s["mae"] == pytest.approx(np.abs(err).mean(), rel=1e-5)
        assert s["rmse"] == pytest.approx(np.sqrt((err**2).mean()), rel=1e-5)
        w = np.cos(np.deg2rad(obs["lat"].values))
        w = w / w.mean()
        lead_rmse = np.sqrt((err**2 * w[None, None, :, None]).mean(axis=(0, 2, 3)))
        assert s["wb2"]["rmse"]["t2m"] == pytest.approx(lead_rmse.mean(), rel=1e-4)
