"""`svqcast plot`: figure, GIF and the scores it reports, against a float64 oracle."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from _cli import run_cli
from _predict_fixtures import era5_spec, open_sample

from svqcast.errors import MissingExtraError

INIT = np.datetime64("2019-03-29T00:00", "ns")


@pytest.fixture(scope="module")
def forecast_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A forecast file of 6 leads whose values are the truth + a known pattern."""
    from svqcast.forecast.writer import build_forecast_dataset, write_forecast

    obs = open_sample()
    truth = obs["t2m"].sel(time=slice("2019-03-29T01", "2019-03-29T06")).values.astype(np.float32)
    offset = np.linspace(-1.0, 2.0, 32, dtype=np.float32)[None, :, None]  # varies with latitude
    values = (truth + offset * np.arange(1, 7, dtype=np.float32)[:, None, None])[None, :, None]
    ds = build_forecast_dataset(values, era5_spec(obs), np.array([INIT]), range(1, 7),
                                source="t", history="t", trained_steps=12, model_ref="oracle")
    path = tmp_path_factory.mktemp("plot") / "fc.nc"
    write_forecast(ds, path)
    return path


_run = run_cli


def test_plot_with_truth_scores_match_oracle(forecast_file: Path, tmp_path: Path, capsys) -> None:
    from PIL import Image

    # truth given in degC with ascending latitude: the same validation as predict input
    obs = open_sample()
    truth = obs.isel(lat=slice(None, None, -1))
    truth["t2m"] = truth["t2m"] - 273.15
    truth["t2m"].attrs["units"] = "degC"
    truth_path = tmp_path / "truth.nc"
    truth.sel(time=slice("2019-03-29T00", "2019-03-29T04")).to_netcdf(truth_path)  # covers leads 1..4 of 6

    fig = tmp_path / "fig.png"
    gif = tmp_path / "anim.gif"
    code, out, err = _run(["plot", forecast_file, "--truth", truth_path, "-o", fig, "--animate", gif,
                           "--format", "json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert [s["lead_time"] for s in result["scores"]] == ["1h", "2h", "3h", "4h"]
    lat = obs["lat"].values.astype(np.float64)
    offset = np.linspace(-1.0, 2.0, 32)
    w = np.cos(np.deg2rad(lat))
    w = w / w.mean()
    for k, s in enumerate(result["scores"], start=1):
        err_field = np.repeat((offset * k)[:, None], 48, axis=1)  # forecast - truth, exactly
        assert s["mae"] == pytest.approx(np.mean(w[:, None] * np.abs(err_field)), abs=2e-3)
        assert s["rmse"] == pytest.approx(np.sqrt(np.mean(w[:, None] * err_field**2)), abs=2e-3)
    with Image.open(fig) as im:
        assert im.format == "PNG" and im.size[0] > 500 and im.size[1] > 500
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames == 6


def test_plot_without_truth_and_lead_selection(forecast_file: Path, tmp_path: Path, capsys) -> None:
    from svqcast.verify.plot import plot_forecast

    res = plot_forecast(forecast_file, tmp_path / "a.png", lead_times=["2h", "6h"])
    assert res["lead_times_mapped"] == ["2h", "6h"] and res["scores"] == []
    code, _, err = _run(["plot", forecast_file, "-o", tmp_path / "a.png"], capsys)
    assert code == 2 and "--overwrite" in err
    code, _, err = _run(["plot", forecast_file, "-o", tmp_path / "b.png", "--lead-time", "9h"], capsys)
    assert code == 2 and "9h" in err
    code, _, err = _run(["plot", forecast_file, "-o", tmp_path / "c.png", "--variables", "u10"], capsys)
    assert code == 2 and "u10" in err


def test_missing_matplotlib_is_a_missing_extra_error(forecast_file: Path, tmp_path: Path, monkeypatch) -> None:
    from svqcast.verify.plot import plot_forecast

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(MissingExtraError, match=r"svqcast\[plot\]"):
        plot_forecast(forecast_file, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_multi_init_files_say_so_and_init_time_picks_one(tmp_path: Path, capsys) -> None:
    """Issue 11: a file with several initialisations is not silently plotted (and scored) at its
    first; --init-time picks one, and its scores are that initialisation's."""
    from svqcast.forecast.writer import build_forecast_dataset, write_forecast

    obs = open_sample()
    inits = np.array(["2019-03-29T00", "2019-03-29T03"], dtype="datetime64[ns]")
    values = np.stack([
        obs["t2m"].sel(time=slice(str(t + np.timedelta64(1, "h")), str(t + np.timedelta64(3, "h")))).values + k + 1
        for k, t in enumerate(inits)
    ]).astype(np.float32)[:, :, None]
    ds = build_forecast_dataset(values, era5_spec(obs), inits, range(1, 4), source="t", history="t",
                                trained_steps=12, model_ref="oracle")
    path = tmp_path / "multi.nc"
    write_forecast(ds, path)
    truth = tmp_path / "truth.nc"
    obs.sel(time=slice("2019-03-29T00", "2019-03-29T12")).to_netcdf(truth)
    code, out, err = _run(["plot", path, "--truth", truth, "-o", tmp_path / "a.png", "--format", "json"], capsys)
    assert code == 0 and "holds 2 initialisations" in err and "--init-time" in err
    assert [round(s["mae"], 4) for s in json.loads(out)["scores"]] == [1.0, 1.0, 1.0]
    code, out, err = _run(["plot", path, "--truth", truth, "-o", tmp_path / "b.png", "--init-time",
                           "2019-03-29T03:00", "--format", "json"], capsys)
    assert code == 0 and "initialisations" not in err
    assert [round(s["mae"], 4) for s in json.loads(out)["scores"]] == [2.0, 2.0, 2.0]


def test_panels_follow_the_grid_s_shape_and_colour_frames_stay_colour(tmp_path: Path, capsys) -> None:
    import xarray as xr
    from PIL import Image

    lat, lon = np.linspace(50, 54.25, 18), np.linspace(-10, 97.75, 432)  # an 18 x 432 strip
    leads = np.array([1, 2], dtype="timedelta64[h]").astype("timedelta64[ns]")
    values = 280 + np.random.default_rng(0).normal(size=(1, 2, 18, 432))
    xr.Dataset({"t2m": (("time", "lead_time", "lat", "lon"), values, {"units": "K"})},
               coords={"time": [INIT], "lead_time": leads, "lat": lat, "lon": lon}).to_netcdf(tmp_path / "strip.nc")
    code, _, err = _run(["plot", tmp_path / "strip.nc", "-o", tmp_path / "strip.png"], capsys)
    assert code == 0, err
    with Image.open(tmp_path / "strip.png") as im:
        assert im.size[0] > 1.8 * im.size[1]  # a wide figure for a wide grid, not a squashed square
    rgb = {c: (("time", "lead_time", "y", "x"), np.full((1, 2, 24, 32), level), {"units": "1"})
           for c, level in (("red", 0.9), ("green", 0.1), ("blue", 0.1))}
    lead = ("lead_time", np.array([1, 2], np.int32), {"svqcast_step_unit": "frames", "svqcast_step_size": 1})
    xr.Dataset(rgb, coords={"time": np.array([10], np.int32), "lead_time": lead, "y": np.arange(24.0),
                            "x": np.arange(32.0)}).to_netcdf(tmp_path / "rgb.nc")
    code, out, err = _run(["plot", tmp_path / "rgb.nc", "-o", tmp_path / "rgb.png", "--format", "json"], capsys)
    assert code == 0, err
    assert json.loads(out)["lead_times_mapped"] == ["1 frame", "2 frames"]
    with Image.open(tmp_path / "rgb.png") as im:
        pixels = np.asarray(im.convert("RGB")).reshape(-1, 3).astype(int)
    reddish = (pixels[:, 0] > 200) & (pixels[:, 1] < 60) & (pixels[:, 2] < 60)
    assert reddish.sum() > 1000  # the frames are drawn in their colour
