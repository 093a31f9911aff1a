"""`svqcast score` on a WeatherBench2-layout store with levels, regions and intervals.

Forecast and truth are written here in WeatherBench2's zarr layout (geopotential on levels,
2m_temperature, 10 m wind), and every number is recomputed by a float64 numpy oracle with
explicit loops: cos(latitude) weights (on this evenly spaced global grid the cell areas are
exactly proportional to them) renormalised over the region, RMSE as the root of the mean over
initialisations, and the documented bootstrap (numpy's default_rng(seed).integers(0, n,
(resamples, n)) over initialisations, percentile bounds).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from _cli import run_cli

from svqcast.verify.regions import REGIONS

LAT = np.arange(-85.0, 90.0, 10.0)
LON = np.arange(0.0, 360.0, 10.0)
INITS = np.arange(np.datetime64("2020-01-01T00", "ns"), np.datetime64("2020-01-04T00", "ns"), np.timedelta64(12, "h"))
LEADS = np.array([6, 12, 24], dtype="timedelta64[h]").astype("timedelta64[ns]")
TRUTH_TIMES = np.arange(np.datetime64("2019-12-31T00", "ns"), np.datetime64("2020-01-06T00", "ns"),
                        np.timedelta64(6, "h"))


def _field(rng: np.random.Generator, shape: tuple[int, ...], loc: float, scale: float) -> np.ndarray:
    return rng.normal(loc, scale, shape).astype(np.float32)


def _write(tmp: Path) -> tuple[Path, Path, xr.Dataset, xr.Dataset]:
    rng = np.random.default_rng(0)
    n, m, h, w = INITS.size, LEADS.size, LAT.size, LON.size
    dims4 = ("time", "prediction_timedelta", "latitude", "longitude")
    dims5 = ("time", "prediction_timedelta", "level", "latitude", "longitude")
    fc = xr.Dataset(
        {"geopotential": (dims5, _field(rng, (n, m, 2, h, w), 5e4, 300.0), {"units": "m2 s-2"}),
         "2m_temperature": (dims4, _field(rng, (n, m, h, w), 280.0, 8.0), {"units": "K"}),
         "10m_u_component_of_wind": (dims4, _field(rng, (n, m, h, w), 2.0, 5.0), {"units": "m s-1"}),
         "10m_v_component_of_wind": (dims4, _field(rng, (n, m, h, w), -1.0, 5.0), {"units": "m s-1"}),
         "ensemble_spread": (("time", "prediction_timedelta", "quantile", "latitude", "longitude"),
                             _field(rng, (n, m, 3, h, w), 1.0, 0.1), {"units": "K"})},
        coords={"time": INITS, "prediction_timedelta": LEADS, "level": [500, 850], "latitude": LAT,
                "longitude": LON, "quantile": [0.1, 0.5, 0.9]})
    t = TRUTH_TIMES.size
    truth = xr.Dataset(
        {"geopotential": (("time", "level", "latitude", "longitude"), _field(rng, (t, 3, h, w), 5e4, 300.0),
                          {"units": "m2 s-2"}),
         "2m_temperature": (("time", "latitude", "longitude"), _field(rng, (t, h, w), 281.0, 8.0), {"units": "K"}),
         "10m_u_component_of_wind": (("time", "latitude", "longitude"), _field(rng, (t, h, w), 2.0, 5.0),
                                     {"units": "m s-1"}),
         "10m_v_component_of_wind": (("time", "latitude", "longitude"), _field(rng, (t, h, w), -1.0, 5.0),
                                     {"units": "m s-1"})},
        coords={"time": TRUTH_TIMES, "level": [250, 500, 850], "latitude": LAT, "longitude": LON})
    fc.to_zarr(tmp / "forecast.zarr", zarr_format=2, consolidated=True)
    truth.to_zarr(tmp / "truth.zarr", zarr_format=2, consolidated=True)
    return tmp / "forecast.zarr", tmp / "truth.zarr", fc, truth


def _pairs(fc: xr.Dataset, truth: xr.Dataset, var: str, level: float | None):
    """(init, lead) -> (forecast field, truth field) float64."""
    f = fc[var] if level is None else fc[var].sel(level=level)
    o = truth[var] if level is None else truth[var].sel(level=level)
    index = {t: k for k, t in enumerate(TRUTH_TIMES.tolist())}
    for i, t0 in enumerate(INITS):
        for j, lead in enumerate(LEADS):
            yield i, j, f.values[i, j].astype(np.float64), o.values[index[(t0 + lead).tolist()]].astype(np.float64)


def _oracle(fc, truth, var, level, region, transform=None):
    mask = REGIONS[region].mask(LAT, LON)
    w = np.repeat(np.cos(np.deg2rad(LAT))[:, None], LON.size, axis=1) * mask
    mse = np.zeros((INITS.size, LEADS.size))
    bias = np.zeros_like(mse)
    for i, j, f, o in _pairs(fc, truth, var, level):
        err = f - o
        mse[i, j] = np.sum(w * err**2) / np.sum(w)
        bias[i, j] = np.sum(w * err) / np.sum(w)
    rmse = np.sqrt(mse.mean(axis=0))
    picks = np.random.default_rng(0).integers(0, INITS.size, (1000, INITS.size))
    boot = np.sqrt(mse[picks].mean(axis=1))  # (1000, leads)
    lo, hi = np.quantile(boot, [0.025, 0.975], axis=0)
    return rmse, bias.mean(axis=0), lo, hi


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory):
    return _write(tmp_path_factory.mktemp("wb2"))


def test_levels_regions_and_intervals_equal_the_oracle(files, capsys: pytest.CaptureFixture[str],
                                                       tmp_path: Path) -> None:
    fpath, tpath, fc, truth = files
    code, out, err = run_cli(["score", fpath, "--truth", tpath, "--region", "global,tropics,europe",
                              "--format", "json"], capsys)
    assert code == 0, err
    r = json.loads(out)
    assert {"geopotential@500", "geopotential@850", "2m_temperature"} <= set(r["variables"])
    assert r["not_scored"].keys() == {"ensemble_spread"} and "quantile" in r["not_scored"]["ensemble_spread"]
    assert any("ensemble_spread is not scored" in n for n in r["notes"])
    for key, var, level in (("geopotential@500", "geopotential", 500), ("geopotential@850", "geopotential", 850),
                            ("2m_temperature", "2m_temperature", None)):
        v = r["variables"][key]
        assert (v["variable"], v["level"]) == (var, level)
        for region in ("global", "tropics", "europe"):
            rmse, bias, lo, hi = _oracle(fc, truth, var, level, region)
            rows = v["regions"][region]["per_lead"]
            np.testing.assert_allclose([row["rmse"] for row in rows], rmse, rtol=1e-10)
            np.testing.assert_allclose([row["bias"] for row in rows], bias, rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose([row["ci"]["rmse"] for row in rows], np.stack([lo, hi], 1), rtol=1e-10)
            assert all(row["n"] == INITS.size for row in rows)
    assert r["confidence"] == {"method": "percentile bootstrap over initialisations", "level": 0.95,
                               "resamples": 1000, "seed": 0}


def test_wind_speed_and_vector_are_derived(files, capsys: pytest.CaptureFixture[str]) -> None:
    fpath, tpath, fc, truth = files
    code, out, err = run_cli(["score", fpath, "--truth", tpath, "--variables",
                              "10m_u_component_of_wind,10m_v_component_of_wind", "--format", "json",
                              "--bootstrap", "0"], capsys)
    assert code == 0, err
    r = json.loads(out)["variables"]
    w = np.repeat(np.cos(np.deg2rad(LAT))[:, None], LON.size, axis=1)
    pu = list(_pairs(fc, truth, "10m_u_component_of_wind", None))
    pv = list(_pairs(fc, truth, "10m_v_component_of_wind", None))
    speed_se = np.zeros((INITS.size, LEADS.size))
    vec_se = np.zeros_like(speed_se)
    for (i, j, fu, ou), (_, _, fv_, ov) in zip(pu, pv, strict=True):
        speed_se[i, j] = np.sum(w * (np.hypot(fu, fv_) - np.hypot(ou, ov)) ** 2) / np.sum(w)
        vec_se[i, j] = np.sum(w * ((fu - ou) ** 2 + (fv_ - ov) ** 2)) / np.sum(w)
    np.testing.assert_allclose([x["rmse"] for x in r["10m_wind_speed"]["per_lead"]],
                               np.sqrt(speed_se.mean(0)), rtol=1e-10)
    np.testing.assert_allclose([x["rmse"] for x in r["10m_wind_vector"]["per_lead"]],
                               np.sqrt(vec_se.mean(0)), rtol=1e-10)
    assert r["10m_wind_vector"]["overall"]["bias"] is None


def test_netcdf_results_file_has_the_wb2_layout(files, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    fpath, tpath, _, _ = files
    out_nc = tmp_path / "results.nc"
    code, _, err = run_cli(["score", fpath, "--truth", tpath, "--region", "all", "--format", "netcdf",
                            "-o", out_nc, "--bootstrap", "200"], capsys)
    assert code == 0, err
    code, js, _ = run_cli(["score", fpath, "--truth", tpath, "--region", "all", "--format", "json",
                           "--bootstrap", "200"], capsys)
    r = json.loads(js)
    with xr.open_dataset(out_nc) as res:
        assert res["geopotential"].dims == ("metric", "region", "lead_time", "level")
        assert res["2m_temperature"].dims == ("metric", "region", "lead_time")
        assert list(res["metric"].values) == ["rmse", "mae", "bias"]
        assert set(res["region"].values) == set(REGIONS)  # every WB2 region touches a global grid
        assert res["lead_time"].dtype.kind == "m" and list(res["level"].values) == [500, 850]
        got = res["geopotential"].sel(metric="rmse", region="europe", level=850).values
        want = [row["rmse"] for row in r["variables"]["geopotential@850"]["regions"]["europe"]["per_lead"]]
        np.testing.assert_allclose(got, want, rtol=1e-12)
        lower = res["2m_temperature_ci_lower"].sel(metric="rmse", region="arctic").values
        want = [row["ci"]["rmse"][0] for row in r["variables"]["2m_temperature"]["regions"]["arctic"]["per_lead"]]
        np.testing.assert_allclose(lower, want, rtol=1e-12)


@pytest.mark.parametrize(("args", "code", "needle"), [
    (["--variables", "geopotential@300"], 2, "has the levels 500, 850"),
    (["--variables", "ensemble_spread"], 2, "cannot be scored"),
    (["--region", "mars"], 2, "unknown"),
    (["--format", "netcdf"], 2, "--output"),
])
def test_bad_requests_are_one_line_and_write_nothing(files, capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                     args: list[str], code: int, needle: str) -> None:
    fpath, tpath, _, _ = files
    got, out, err = run_cli(["score", fpath, "--truth", tpath, *args], capsys)
    assert got == code and needle in err and out == ""
    assert list(tmp_path.iterdir()) == []


def test_a_region_off_the_grid_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lat, lon = np.arange(50.0, 60.0, 1.0), np.arange(0.0, 10.0, 1.0)  # Europe only
    rng = np.random.default_rng(3)
    fc = xr.Dataset({"t2m": (("time", "lead_time", "lat", "lon"), rng.normal(280, 1, (2, 2, 10, 10)),
                             {"units": "K"})},
                    coords={"time": INITS[:2], "lead_time": LEADS[:2], "lat": lat, "lon": lon})
    truth = xr.Dataset({"t2m": (("time", "lat", "lon"), rng.normal(280, 1, (TRUTH_TIMES.size, 10, 10)),
                                {"units": "K"})}, coords={"time": TRUTH_TIMES, "lat": lat, "lon": lon})
    fc.to_netcdf(tmp_path / "f.nc")
    truth.to_netcdf(tmp_path / "t.nc")
    code, _, err = run_cli(["score", tmp_path / "f.nc", "--truth", tmp_path / "t.nc", "--region", "antarctic",
                            "--format", "netcdf", "-o", tmp_path / "r.nc"], capsys)
    assert code == 3 and "holds no cell of the grid" in err and not (tmp_path / "r.nc").exists()
    code, out, err = run_cli(["score", tmp_path / "f.nc", "--truth", tmp_path / "t.nc", "--region", "all",
                              "--format", "json"], capsys)
    assert code == 0, err
    assert set(json.loads(out)["regions"]) == {"global", "northern-hemisphere", "extra-tropics", "europe"}
