"""Time-step inference for `svqcast prepare PATH`: fixed and calendar steps, jitter, gaps; and
the readers' level selection and files split by variable."""

from __future__ import annotations

from pathlib import Path

import _own_data_files as files
import numpy as np
import pytest
import xarray as xr
from test_data_fixtures import cli

from svqcast.data.splitting import Window, split_ranges
from svqcast.data.store import open_split
from svqcast.errors import DataError, UsageError
from svqcast.sources.calendars import calendar_frames, infer_step, parse_step, shift_months


def _dt(values: list[str]) -> np.ndarray:
    return np.array(values, dtype="datetime64[ns]")


def test_fixed_steps_and_jitter() -> None:
    hourly = np.datetime64("2019-03-01", "ns") + np.arange(48) * np.timedelta64(1, "h")
    assert infer_step(hourly, "x").label == "1h"
    jitter = hourly + (np.arange(48) % 3 - 1) * np.timedelta64(3, "ms")  # a float32 "days since" axis
    step = infer_step(jitter, "x")
    assert step.label == "1h" and step.seconds == 3600.0
    half = np.datetime64("2019-03-01", "ns") + np.arange(10) * np.timedelta64(30, "m")
    assert infer_step(half, "x").label == "30min"
    with pytest.raises(DataError, match=r"gap in the 1h time axis: 2019-03-01T05:00:00 is missing"):
        infer_step(np.delete(hourly, 5), "x")
    with pytest.raises(DataError, match="is off the 1h grid"):
        infer_step(np.concatenate([hourly[:5], hourly[5:] + np.timedelta64(20, "m")]), "x")


def test_calendar_steps_monthly_seasonal_yearly() -> None:
    monthly = _dt(["2001-01-16T12", "2001-02-15", "2001-03-16T12", "2001-04-16", "2001-05-16T12", "2001-06-16"])
    assert infer_step(monthly, "x").label == "1M" and infer_step(monthly, "x").months == 1
    seasonal = _dt(["2001-01-15", "2001-04-15", "2001-07-15", "2001-10-15", "2002-01-15"])
    assert infer_step(seasonal, "x").label == "1Q"
    yearly = _dt([f"{y}-07-01" for y in range(1990, 2000)])
    assert infer_step(yearly, "x").label == "1Y"
    with pytest.raises(DataError, match="gap in the 1M time axis: 2001-03-01 is missing"):
        infer_step(np.delete(monthly, 2), "x")
    with pytest.raises(DataError, match="gap in the 1Y time axis: 1993-07-01 is missing"):
        infer_step(np.delete(yearly, 3), "x")
    assert infer_step(yearly, "x", parse_step("12M")).months == 12  # an explicit --time-step is checked


def test_order_and_step_parsing() -> None:
    t = _dt(["2001-01-01T00", "2001-01-01T06", "2001-01-01T06", "2001-01-01T12"])
    with pytest.raises(DataError, match="duplicated: 2001-01-01T06:00:00 follows 2001-01-01T06:00:00"):
        infer_step(t, "x")
    assert parse_step("6h").seconds == 21600 and parse_step("1D").seconds == 86400 and parse_step("1Y").months == 12
    for bad in ("6 hours", "0h", "h6", "1W"):
        with pytest.raises(UsageError):
            parse_step(bad)


def test_calendar_arithmetic_for_forecasts() -> None:
    got = shift_months(_dt(["2019-01-31", "2019-07-01T06"]), np.array([1, 12]))
    np.testing.assert_array_equal(got, _dt(["2019-02-28", "2020-07-01T06"]))  # clamped to the month's end
    monthly = _dt(["2001-01-16T12", "2001-02-15", "2001-03-16T12", "2001-04-16"])
    idx = calendar_frames(monthly, monthly[-1:], np.array([-2, -1, 0]), 1, "x")
    np.testing.assert_array_equal(idx, [[1, 2, 3]])
    with pytest.raises(DataError, match="2000-12 is missing"):
        calendar_frames(monthly, monthly[:1], np.array([-1, 0]), 1, "x")


def test_split_ranges_default_and_dates() -> None:
    days = np.datetime64("2001-01-01", "ns") + np.arange(100) * np.timedelta64(1, "D")
    assert split_ranges(days, None, Window(4, 4), None) == {"train": (0, 70), "val": (70, 85), "test": (85, 100)}
    given = ["train=2001-01-01:2001-02", "val=2001-03:2001-03-20", "test=2001-03-21:2001"]
    assert split_ranges(days, given, Window(4, 4), None) == {"train": (0, 59), "val": (59, 79), "test": (79, 100)}
    with pytest.raises(UsageError, match="overlap"):
        split_ranges(days, ["train=2001:2001", "val=2001-03:2001-03", "test=2001-04:2001-04"], Window(2, 2), None)
    frames = np.arange(50)
    assert split_ranges(frames, ["train=0:30", "val=30:40", "test=40:50"], Window(2, 2), None)["val"] == (30, 40)


def test_level_selection_and_files_split_by_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys) -> None:
    root = tmp_path / "root"
    monkeypatch.setenv("SVQCAST_DATA_DIR", str(root))
    t = files.six_hourly(80)
    values = np.random.default_rng(3).normal(size=(80, 3, 6, 8)).astype("f4")
    ds = xr.Dataset({"t": (("time", "level", "lat", "lon"), values, {"units": "K"})},
                    coords={"time": t, "level": [500, 850, 1000], "lat": np.arange(6.0), "lon": np.arange(8.0)})
    ds.to_netcdf(tmp_path / "levels.nc")
    code, _, err = cli(["prepare", str(tmp_path / "levels.nc"), "--name", "t850", "--level", "850", "--t-in", "4",
                        "--t-out", "4"], capsys)
    assert code == 0, err
    with open_split(root / "t850" / "prepared", "train") as st:
        np.testing.assert_array_equal(st["data"].values[:, 0], values[:56, 1])
    byvar = tmp_path / "byvar"
    byvar.mkdir()
    files.dataset(t, name="t2m").to_netcdf(byvar / "t2m.nc")
    files.dataset(t, name="tp", units="mm").to_netcdf(byvar / "tp.nc")
    code, _, err = cli(["prepare", str(byvar), "--name", "two", "--t-in", "4", "--t-out", "4"], capsys)
    assert code == 0, err
    with open_split(root / "two" / "prepared", "val") as st:
        assert [str(c) for c in st["channel"].values] == ["t2m", "tp"]
        assert [str(u) for u in st["units"].values] == ["K", "mm"]
