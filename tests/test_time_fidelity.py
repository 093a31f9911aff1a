"""Right times for every kind of step: monthly and yearly data (calendar steps) and frame data are
forecast with leads counted in steps, valid times on the input's own stamps, and `svqcast score`
and `plot --truth` match them in the default layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from _cli import run_cli

from svqcast.data.store import open_split

TINY = ["--set", "model.hid_S=8", "--set", "model.hid_T=16", "--set", "model.N_T=2", "--set", "model.mlp_ratio=2.0",
        "--set", "train.batch_size=4", "--set", "train.max_steps_per_epoch=2", "--set", "train.max_val_steps=1",
        "--set", "model.in_shape=[2,1,4,5]", "--set", "model.out_frames=1", "--progress", "none", "--max-epochs", "1"]


def _field(path: Path, times: pd.DatetimeIndex) -> Path:
    rng = np.random.default_rng(0)
    season = 10 * np.sin(2 * np.pi * np.arange(times.size) / 12.0)
    values = 285.0 + season[:, None, None] + rng.normal(size=(times.size, 4, 5))
    xr.Dataset({"sst": (("time", "lat", "lon"), values, {"units": "K"})},
               coords={"time": times, "lat": np.linspace(-10.0, 10.0, 4), "lon": np.linspace(0.0, 20.0, 5)}
               ).to_netcdf(path)
    return path


def _model(tmp_path: Path, source: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    code, _, err = run_cli(["prepare", source, "--name", "d", "--t-in", "2", "--t-out", "1"], capsys)
    assert code == 0, err
    run = tmp_path / "run"
    code, _, err = run_cli(["train", "--preset", "era5-uk-t2m_gsta", "--dataset", "d", "--run-dir", run, *TINY], capsys)
    assert code == 0, err
    return run


@pytest.fixture()
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SVQCAST_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


@pytest.mark.parametrize("freq, lead, labels", [("MS", "3M", ["1 month", "2 months", "3 months"]),
                                                ("12MS", "2Y", ["1 year", "2 years"])])
def test_calendar_steps_forecast_score_and_plot_on_the_input_s_stamps(
        freq: str, lead: str, labels: list[str], sandbox: Path, capsys: pytest.CaptureFixture[str]) -> None:
    times = pd.date_range("1990-07-01", periods=60, freq=freq)
    source = _field(sandbox / "in.nc", times)
    run = _model(sandbox, source, capsys)
    init = times[40]
    forecast = sandbox / "f.nc"
    code, out, err = run_cli(["predict", source, "--model", run, "-o", forecast, "--init-time", str(init),
                              "--lead-time", lead, "--format", "json"], capsys)
    assert code == 0, err
    with xr.open_dataset(forecast) as ds:
        steps = ds["lead_time"].values
        assert steps.tolist() == list(range(1, len(labels) + 1)) and ds["lead_time"].attrs["svqcast_step_unit"]
        assert set(ds["valid_time"].values[0].astype("datetime64[ns]")) <= set(times.values)  # the input's stamps
    code, out, err = run_cli(["score", forecast, "--truth", source, "--format", "json"], capsys)
    assert code == 0, err
    rows = json.loads(out)["variables"]["sst"]["per_lead"]
    assert [r["lead"] for r in rows] == labels and all(r["n"] == 1 and r["rmse"] is not None for r in rows)
    code, out, err = run_cli(["plot", forecast, "--truth", source, "-o", sandbox / "p.png", "--format", "json"], capsys)
    assert code == 0, err
    assert [s["lead_time"] for s in json.loads(out)["scores"]] == labels


def test_an_init_time_between_monthly_stamps_names_the_nearest(sandbox: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    times = pd.date_range("1990-07-01", periods=60, freq="MS")
    source = _field(sandbox / "in.nc", times)
    run = _model(sandbox, source, capsys)
    code, _, err = run_cli(["predict", source, "--model", run, "-o", sandbox / "f.nc", "--init-time", "1993-11-12"],
                           capsys)
    assert code == 2 and "nearest is 1993-11-01" in err and not (sandbox / "f.nc").exists()


def test_frame_data_leads_are_frame_counts_and_score(sandbox: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = np.clip(np.cumsum(np.random.default_rng(0).normal(0, 8, (60, 4, 5)), axis=0) + 128, 0, 255).astype(np.uint8)
    np.save(sandbox / "clip.npy", clip)
    run = _model(sandbox, sandbox / "clip.npy", capsys)
    forecast = sandbox / "f.nc"
    code, _, err = run_cli(["predict", sandbox / "clip.npy", "--model", run, "-o", forecast, "--steps", "3",
                            "--init-time", "40"], capsys)
    assert code == 0, err
    with xr.open_dataset(forecast) as ds:
        assert ds["lead_time"].values.tolist() == [1, 2, 3] and ds.attrs["svqcast_time_step"] == "1 frame"
    code, out, err = run_cli(["score", forecast, "--truth", sandbox / "clip.npy", "--format", "json"], capsys)
    assert code == 0, err
    (var,) = json.loads(out)["variables"].values()
    assert [r["lead"] for r in var["per_lead"]] == ["1 frame", "2 frames", "3 frames"]


def test_data_of_another_grid_says_whose_model_it_is_first(sandbox: Path, capsys: pytest.CaptureFixture[str]) -> None:
    times = pd.date_range("2020-01-01", periods=30, freq="h")
    xr.Dataset({"t2m": (("time", "lat", "lon"), 280 + np.zeros((30, 8, 9)), {"units": "K"})},
               coords={"time": times, "lat": np.linspace(0, 10, 8), "lon": np.linspace(0, 10, 9)}
               ).to_netcdf(sandbox / "other.nc")
    code, _, err = run_cli(["predict", sandbox / "other.nc", "-o", sandbox / "f.nc"], capsys)
    assert code == 3 and len(err.strip().splitlines()) == 1
    assert err.startswith("error: the model era5-uk-t2m_gsta_svq was trained on dataset era5-uk-t2m (grid 32x48, "
                          "variables t2m, step 1h); pass --model RUN")
    assert "grid mismatch" in err and "var-map" not in err.split(";")[0]


@pytest.mark.parametrize("freq, words", [("MS", "month-of-year"), ("12MS", "no cycle within a year")])
def test_the_climatology_reference_follows_the_data_s_own_cycle(freq: str, words: str, sandbox: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    run = _model(sandbox, _field(sandbox / "in.nc", pd.date_range("1990-07-01", periods=60, freq=freq)), capsys)
    code, out, err = run_cli(["evaluate", run, "--format", "json"], capsys)
    assert code == 0, err
    assert words in json.loads(out)["climatology"], json.loads(out)["climatology"]


def test_a_360_day_yearly_file_is_read_by_year_and_forecast(sandbox: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import cftime

    times = [cftime.Datetime360Day(1950 + i, 7, 16) for i in range(60)]
    rng = np.random.default_rng(0)
    xr.Dataset({"tas": (("time", "lat", "lon"), 285 + rng.normal(size=(60, 4, 5)), {"units": "K"})},
               coords={"time": times, "lat": np.linspace(-10.0, 10.0, 4), "lon": np.linspace(0.0, 20.0, 5)}
               ).to_netcdf(sandbox / "y360.nc")
    run = _model(sandbox, sandbox / "y360.nc", capsys)
    code, out, err = run_cli(["predict", sandbox / "y360.nc", "--model", run, "-o", sandbox / "f.nc", "--init-time",
                              "1999-07-16", "--lead-time", "2Y"], capsys)
    assert code == 0, err
    code, out, err = run_cli(["score", sandbox / "f.nc", "--truth", sandbox / "y360.nc", "--format", "json"], capsys)
    assert code == 0, err
    rows = json.loads(out)["variables"]["tas"]["per_lead"]
    assert [r["lead"] for r in rows] == ["1 year", "2 years"] and all(r["n"] == 1 for r in rows)


def test_a_360_day_daily_file_is_refused_with_advice_that_works(sandbox: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    import cftime

    times = [cftime.Datetime360Day(2000, 1, 1) + pd.Timedelta(days=i).to_pytimedelta() for i in range(60)]
    xr.Dataset({"tas": (("time", "lat", "lon"), 285 + np.zeros((60, 4, 5)), {"units": "K"})},
               coords={"time": times, "lat": np.linspace(-10.0, 10.0, 4), "lon": np.linspace(0.0, 20.0, 5)}
               ).to_netcdf(sandbox / "d360.nc")
    code, _, err = run_cli(["prepare", sandbox / "d360.nc", "--name", "d360"], capsys)
    assert code == 3 and "convert_calendar" in err and "only relabels" in err


def test_the_time_axis_is_the_coordinate_that_says_so(sandbox: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """NEMO output: a unit-less `time_counter` dimension, the dates in `time_centered`
    (standard_name time); bounds (`time_centered_bounds`) ride along."""
    import netCDF4

    path = sandbox / "nemo.nc"
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("time_counter", 40)
        nc.createDimension("y", 4)
        nc.createDimension("x", 5)
        nc.createDimension("axis_nbounds", 2)
        counter = nc.createVariable("time_counter", "f8", ("time_counter",))
        counter[:] = np.arange(40)
        centred = nc.createVariable("time_centered", "f8", ("time_counter",))
        centred.standard_name, centred.units, centred.calendar = "time", "days since 2000-01-01", "gregorian"
        centred.bounds = "time_centered_bounds"
        centred[:] = np.arange(40) + 0.5
        bounds = nc.createVariable("time_centered_bounds", "f8", ("time_counter", "axis_nbounds"))
        bounds[:] = np.stack([np.arange(40), np.arange(40) + 1.0], axis=1)
        sst = nc.createVariable("sst", "f4", ("time_counter", "y", "x"))
        sst.units, sst.coordinates = "degC", "time_centered"
        sst[:] = 15 + np.random.default_rng(0).normal(size=(40, 4, 5))
    code, out, err = run_cli(["prepare", path, "--name", "nemo", "--t-in", "2", "--t-out", "1", "--format", "json"],
                             capsys)
    assert code == 0, err
    with open_split(sandbox / "data" / "nemo" / "prepared", "train") as ds:
        assert str(ds["time"].values[0])[:16] == "2000-01-01T12:00"  # time_centered, not counter 0


def test_export_validates_on_the_model_s_own_data_and_records_calendar_steps(
        sandbox: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = _field(sandbox / "in.nc", pd.date_range("1990-07-01", periods=60, freq="MS"))
    run = _model(sandbox, source, capsys)
    code, out, err = run_cli(["models", "export", run, "--format", "pt2", "-o", sandbox / "exp", "--validate"], capsys)
    assert code == 0, err
    assert "the first test sample of d" in out
    doc = json.loads((sandbox / "exp" / "data_spec.json").read_text())
    assert doc["frames"]["time_step"] == "1 month" and doc["frames"]["calendar_step"] is True


def test_forecasts_keep_the_input_s_metadata(sandbox: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from svqcast.data.samples import SAMPLES_DIR

    ds = xr.open_dataset(SAMPLES_DIR / "era5_uk_t2m_2019-03.nc").rename({"lat": "latitude", "lon": "longitude"})
    ds = ds.assign_coords(height=((), 2.0, {"units": "m", "standard_name": "height", "positive": "up"}))
    ds["t2m"].attrs.update(long_name="air temperature at 2 m (ERA5)", standard_name="air_temperature")
    ds.to_netcdf(sandbox / "in.nc")
    for layout, dims in (("cf", ("latitude", "longitude")), ("wb2", ("latitude", "longitude")),
                         ("valid-time", ("latitude", "longitude"))):
        out = sandbox / f"f_{layout}.nc"
        code, _, err = run_cli(["predict", sandbox / "in.nc", "-o", out, "--lead-time", "3h", "--layout", layout,
                                "--init-time", "2019-03-29T00:00"],
                               capsys)
        assert code == 0, err
        with xr.open_dataset(out) as f:
            var = f["t2m"] if "t2m" in f else f["2m_temperature"]
            assert set(dims) <= set(f.dims) and "lat" not in f.dims
            assert var.attrs["long_name"] == "air temperature at 2 m (ERA5)" and float(f["height"]) == 2.0
    code, out, err = run_cli(["score", sandbox / "f_cf.nc", "--truth", sandbox / "in.nc", "--format", "json"], capsys)
    assert code == 0, err


def test_reports_label_calendar_leads_in_their_unit(sandbox: Path, capsys: pytest.CaptureFixture[str]) -> None:
    times = pd.date_range("1990-07-01", periods=60, freq="MS")
    source = _field(sandbox / "in.nc", times)
    run = _model(sandbox, source, capsys)
    code, out, err = run_cli(["predict", source, "--model", run, "-o", sandbox / "f.nc", "--init-time", str(times[40]),
                              "--lead-time", "2M", "--format", "json"], capsys)
    assert code == 0, err
    assert json.loads(out)["lead_times"] == ["1 month", "2 months"]
    code, out, err = run_cli(["evaluate", run, "--format", "json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["lead_labels"] == ["1 month"] and result["lead_time_iso"] is None


@pytest.mark.needs_shared
def test_real_monthly_sst_forecast_scores_on_its_own_stamps(shared_data: Path, sandbox: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """The real ERSST v5 file (stamped on the 1st of each month), cut to an ocean box in the
    south-west Pacific (land is missing data, which masks will handle): monthly leads end to end."""
    real = xr.open_dataset(shared_data / "global_coarse" / "ersst_v5_sst_monthly_32x64.nc")
    box = real.isel(lat=slice(13, 17), lon=slice(27, 32))
    assert np.isfinite(box["sst"].values).all()
    box.to_netcdf(sandbox / "ersst_box.nc")
    run = _model(sandbox, sandbox / "ersst_box.nc", capsys)
    init = str(real["time"].values[100])[:10]
    code, out, err = run_cli(["predict", sandbox / "ersst_box.nc", "--model", run, "-o", sandbox / "f.nc",
                              "--init-time", init, "--lead-time", "3M", "--format", "json"], capsys)
    assert code == 0, err
    with xr.open_dataset(sandbox / "f.nc") as f:
        valid = f["valid_time"].values[0].astype("datetime64[D]").astype(str).tolist()
    assert all(v.endswith("-01") for v in valid)  # the 1st of the month, as the input's stamps
    code, out, err = run_cli(["score", sandbox / "f.nc", "--truth", sandbox / "ersst_box.nc", "--format", "json"],
                             capsys)
    assert code == 0, err
    rows = json.loads(out)["variables"]["sst"]["per_lead"]
    assert [r["lead"] for r in rows] == ["1 month", "2 months", "3 months"] and all(r["n"] == 1 for r in rows)


def test_a_real_video_forecasts_frames_that_score(sandbox: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A real KTH clip (XviD .avi): frame leads from predict, scored against the video itself."""
    video = Path(__file__).parent / "data" / "kth" / "test_example.avi"
    code, out, err = run_cli(["prepare", video, "--name", "clip", "--t-in", "2", "--t-out", "1", "--format", "json"],
                             capsys)
    assert code == 0, err
    with open_split(sandbox / "data" / "clip" / "prepared", "train") as ds:
        c, h, w = ds["data"].shape[1:]  # an RGB clip
    run = sandbox / "run"
    tiny = [a if not a.startswith("model.in_shape") else f"model.in_shape=[2,{c},{h},{w}]" for a in TINY]
    code, _, err = run_cli(["train", "--preset", "era5-uk-t2m_gsta", "--dataset", "clip", "--run-dir", run, *tiny],
                           capsys)
    assert code == 0, err
    code, _, err = run_cli(["predict", video, "--model", run, "-o", sandbox / "f.nc", "--steps", "2",
                            "--init-time", "20"], capsys)
    assert code == 0, err
    code, out, err = run_cli(["score", sandbox / "f.nc", "--truth", video, "--format", "json"], capsys)
    assert code == 0, err
    for var in json.loads(out)["variables"].values():  # red, green, blue
        assert [r["lead"] for r in var["per_lead"]] == ["1 frame", "2 frames"]
        assert all(r["n"] == 1 for r in var["per_lead"])
