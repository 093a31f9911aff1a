"""Reference forecasts (svqcast/verify/references.py): the seasonal-naive forecast ("same hour
yesterday", "same time last week") against hand-computed oracles, alone and inside
`svqcast evaluate`."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import xarray as xr
from _predict_fixtures import open_sample
from test_data_fixtures import cli

TINY = ["--set", "model.hid_S=4", "--set", "model.hid_T=8", "--set", "model.N_T=2", "--set", "model.quantizer=none",
        "--set", "train.batch_size=8", "--set", "train.max_steps_per_epoch=1", "--set", "train.max_val_steps=1",
        "--progress", "none"]
LAT = np.array([60.0, 55.0, 50.0, 45.0])
DAYS = 10


def test_same_hour_yesterday_and_persistence_match_a_direct_computation(tmp_path: Path) -> None:
    from svqcast.data import get_split_dataset
    from svqcast.verify.references import reference_scores

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


def test_period_and_lags_by_time_step_and_kind() -> None:
    from svqcast.verify.references import DAY_SECONDS, WEEK_SECONDS, seasonal_lags, seasonal_period_seconds

    def spec(kind: str, step: float | None, time_kind: str = "datetime") -> SimpleNamespace:
        return SimpleNamespace(kind=kind, time_step_seconds=step, time_kind=time_kind)

    assert seasonal_period_seconds(spec("weather", 3600)) == DAY_SECONDS
    assert seasonal_period_seconds(spec("weather", 6 * 3600)) == DAY_SECONDS
    assert seasonal_period_seconds(spec("flow", 1800)) == WEEK_SECONDS  # nyc-taxi / nyc-bike
    assert seasonal_period_seconds(spec("weather", DAY_SECONDS)) is None  # daily data: no diurnal cycle
    assert seasonal_period_seconds(spec("weather", 7 * 3600)) is None  # 7 h steps never land on the same hour
    assert seasonal_period_seconds(spec("video", 1, time_kind="index")) is None
    hour = 3600 * 10**9
    np.testing.assert_array_equal(seasonal_lags([3600, 24 * 3600, 25 * 3600, 49 * 3600], DAY_SECONDS),
                                  [24 * hour, 24 * hour, 48 * hour, 72 * hour])


def _cyclic_netcdf(path: Path) -> np.ndarray:
    """Hourly field that repeats every day exactly, plus noise: the same-hour-yesterday
    error is the difference of two noise draws, known exactly. Returns the values."""
    rng = np.random.default_rng(3)
    hours = np.arange(DAYS * 24)
    cycle = 280 + 6 * np.sin(2 * np.pi * hours / 24)[:, None, None] + np.linspace(0, 3, 5)[None, None, :]
    values = (cycle + rng.normal(0, 0.5, (len(hours), len(LAT), 5))).astype(np.float32)
    times = np.datetime64("2020-01-01T00:00", "ns") + hours * np.timedelta64(1, "h")
    xr.Dataset({"t2m": (("time", "lat", "lon"), values, {"units": "K"})},
               coords={"time": times, "lat": LAT, "lon": np.arange(5) * 1.0}).to_netcdf(path)
    return values.astype(np.float64)


@pytest.mark.parametrize("split", ["test", "train"])
def test_evaluate_reports_same_hour_yesterday_equal_to_the_oracle(tmp_path: Path, monkeypatch, capsys,
                                                                   split: str) -> None:
    monkeypatch.setenv("SVQCAST_DATA_DIR", str(tmp_path / "root"))
    values = _cyclic_netcdf(tmp_path / "cyc.nc")
    code, _, err = cli(["prepare", str(tmp_path / "cyc.nc"), "--name", "cyc", "--t-in", "2", "--t-out", "3"], capsys)
    assert code == 0, err
    run = tmp_path / "run"
    code, _, err = cli(["train", "--dataset", "cyc", "--max-epochs", "1", "--run-dir", str(run), *TINY], capsys)
    assert code == 0, err
    code, out, err = cli(["evaluate", str(run), "--split", split, "--per-lead-time", "--format", "json"], capsys)
    assert code == 0, err
    res = json.loads(out[out.index("{"):])
    from svqcast.data import get_split_dataset

    ds = get_split_dataset("cyc", split, t_in=2, t_out=3)
    start = np.datetime64("2020-01-01T00:00", "ns")
    errors = []
    for i in range(len(ds)):
        rows = ((ds.times(i)[1] - start) // np.timedelta64(1, "h")).astype(int)
        if rows[0] >= 24:  # the first day of the record has no yesterday
            errors.append(values[rows] - values[rows - 24])
    err_y = np.stack(errors)  # (samples, lead, lat, lon): noise(t) - noise(t - 24 h)
    w = np.cos(np.deg2rad(LAT))[None, None, :, None]
    w = w / w.mean()
    per = res["per_lead_time"]["same_hour_yesterday"]
    np.testing.assert_allclose(per["mae"]["t2m"], (np.abs(err_y) * w).mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(per["rmse"]["t2m"], np.sqrt((err_y**2 * w).mean(axis=(0, 2, 3))), rtol=1e-5)
    s = res["scores"]["same_hour_yesterday"]
    assert s["mae"] == pytest.approx(np.abs(err_y).mean(), rel=1e-5)
    assert s["rmse"] == pytest.approx(np.sqrt((err_y**2).mean()), rel=1e-5)
    # noise of std 0.5 on both days: RMSE sqrt(2) * 0.5, far below persistence's (the cycle)
    assert s["rmse"] == pytest.approx(0.5 * np.sqrt(2), rel=0.1)
    assert s["rmse"] < res["scores"]["persistence"]["rmse"] / 2
    assert res["reference_samples"]["same_hour_yesterday"] == len(err_y)
    if split == "train":  # its first day: no yesterday; scored on the others, and said so
        assert len(err_y) < res["samples"] and any("same_hour_yesterday scored on" in n for n in res["notes"])
    else:
        assert len(err_y) == res["samples"] and "notes" not in res
    code, out, _ = cli(["evaluate", str(run), "--split", split, "--format", "csv", "--per-lead-time"], capsys)
    assert sum(r.startswith("same_hour_yesterday,wb2_mae,t2m,") for r in out.splitlines()) == 1 + 3
    code, out, _ = cli(["evaluate", str(run), "--split", split, "--per-lead-time"], capsys)
    assert "same_hour_yesterday" in out and "MAE per lead time" in out
