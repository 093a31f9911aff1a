"""`svqcast score` against independent float64 oracles written here in numpy.

* regional grid: latitude weights as cos(lat) (on an evenly spaced grid the cell-area weights
  are exactly proportional to it), every (init, lead) pair looped over by hand;
* global 32 x 64 grid: WeatherBench2's formula (cell weights from latitude bounds that reach
  the poles, RMSE = sqrt of the time-mean of the weighted spatial mean of squared error).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from _cli import run_cli

from svqcast.data.spec import DataSpec
from svqcast.errors import DataError
from svqcast.forecast.writer import build_forecast_dataset, write_forecast
from svqcast.verify.scoring import score_forecast

STEP_H = 6
INITS = np.array(["2020-01-01T00", "2020-01-01T12", "2020-01-02T06", "2020-01-03T18"], dtype="datetime64[ns]")
LEADS = [1, 2, 3, 4]  # x 6 h


def _spec(lat: np.ndarray, lon: np.ndarray) -> DataSpec:
    return DataSpec(dataset="t", kind="weather", channel_names=["t2m"], variables=["t2m"], units=["K"],
                    dims=["lat", "lon"], coords={"lat": lat.tolist(), "lon": lon.tolist()},
                    time_step_seconds=STEP_H * 3600.0, t_in=1, t_out=4, idx_in=[0], idx_out=LEADS,
                    mean=[0.0], std=[1.0])


def _forecast(lat: np.ndarray, lon: np.ndarray, seed: int = 0) -> tuple[xr.Dataset, np.ndarray]:
    rng = np.random.default_rng(seed)
    values = rng.normal(280.0, 5.0, (INITS.size, len(LEADS), 1, lat.size, lon.size)).astype(np.float32)
    ds = build_forecast_dataset(values, _spec(lat, lon), INITS, LEADS, source="test", history="test",
                                trained_steps=4, model_ref="test")
    return ds, values[:, :, 0].astype(np.float64)


def _truth(lat: np.ndarray, lon: np.ndarray, times: np.ndarray, seed: int = 1) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    values = rng.normal(281.0, 5.0, (times.size, lat.size, lon.size)).astype(np.float32)
    return xr.Dataset({"t2m": (("time", "lat", "lon"), values, {"units": "K"})},
                      coords={"time": times, "lat": lat, "lon": lon})


def _hourly(start: str, end: str) -> np.ndarray:
    return np.arange(np.datetime64(start, "ns"), np.datetime64(end, "ns"), np.timedelta64(6, "h"))


def _oracle(fc: np.ndarray, truth: xr.Dataset, weights2d: np.ndarray, clim: np.ndarray | None = None) -> dict:
    """Independent per-lead and overall scores: explicit loops, float64, weights normalised here."""
    w = weights2d / weights2d.mean()
    tvals = truth["t2m"].values.astype(np.float64)
    index = {t: i for i, t in enumerate(truth["time"].values.astype("datetime64[ns]").tolist())}
    per = {k: [[] for _ in LEADS] for k in ("se", "ae", "e", "acc", "pse")}
    for i, t0 in enumerate(INITS):
        for j, lead in enumerate(LEADS):
            valid = (t0 + np.timedelta64(lead * STEP_H, "h")).astype("datetime64[ns]").tolist()
            if valid not in index:
                continue
            o = tvals[index[valid]]
            err = fc[i, j] - o
            per["se"][j].append(np.mean(w * err**2))
            per["ae"][j].append(np.mean(w * np.abs(err)))
            per["e"][j].append(np.mean(w * err))
            p = tvals[index[t0.astype("datetime64[ns]").tolist()]]
            per["pse"][j].append(np.mean(w * (p - o) ** 2))
            if clim is not None:
                fa, oa = fc[i, j] - clim, o - clim
                per["acc"][j].append(np.mean(w * fa * oa) / np.sqrt(np.mean(w * fa**2) * np.mean(w * oa**2)))
    flat = {k: sum(v, []) for k, v in per.items()}
    return {
        "rmse": [np.sqrt(np.mean(v)) for v in per["se"]], "mae": [np.mean(v) for v in per["ae"]],
        "bias": [np.mean(v) for v in per["e"]], "acc": [np.mean(v) if v else None for v in per["acc"]],
        "n": [len(v) for v in per["se"]], "pers_rmse": [np.sqrt(np.mean(v)) for v in per["pse"]],
        "overall": {"rmse": np.sqrt(np.mean(flat["se"])), "mae": np.mean(flat["ae"]), "bias": np.mean(flat["e"]),
                    "pers_rmse": np.sqrt(np.mean(flat["pse"])), "n_forecasts": len(flat["se"])},
    }


def _assert_matches(result: dict, oracle: dict, var: str = "t2m", acc: bool = False) -> None:
    v = result["variables"][var]
    for j, row in enumerate(v["per_lead"]):
        assert row["lead_time_seconds"] == LEADS[j] * STEP_H * 3600
        assert row["n"] == oracle["n"][j]
        for key in ("rmse", "mae", "bias") + (("acc",) if acc else ()):
            assert row[key] == pytest.approx(oracle[key][j], rel=1e-12, abs=1e-12), (key, j)
        assert v["references"]["persistence"]["per_lead"][j]["rmse"] == pytest.approx(oracle["pers_rmse"][j], rel=1e-12)
    for key in ("rmse", "mae", "bias"):
        assert v["overall"][key] == pytest.approx(oracle["overall"][key], rel=1e-12)
    assert v["overall"]["n_forecasts"] == oracle["overall"]["n_forecasts"]
    assert v["references"]["persistence"]["overall"]["rmse"] == pytest.approx(oracle["overall"]["pers_rmse"], rel=1e-12)


def test_regional_grid_equals_an_independent_float64_computation(tmp_path: Path) -> None:
    lat = np.arange(60.0, 49.0, -0.5)  # descending, regional (22 rows)
    lon = np.arange(-10.0, 2.0, 0.5)
    ds, fc = _forecast(lat, lon)
    write_forecast(ds, tmp_path / "f.nc")
    # truth: every 6 h, but one valid time (2020-01-02T18) missing
    times = _hourly("2019-12-31T18", "2020-01-06T00")
    times = times[times != np.datetime64("2020-01-02T18", "ns")]
    truth = _truth(lat, lon, times)
    truth.to_netcdf(tmp_path / "truth.nc")
    weights = np.repeat(np.cos(np.deg2rad(lat))[:, None], lon.size, axis=1)
    result = score_forecast(tmp_path / "f.nc", tmp_path / "truth.nc")
    oracle = _oracle(fc, truth, weights)
    assert oracle["n"] != [4, 4, 4, 4]  # the gap really removes pairs
    _assert_matches(result, oracle)
    v = result["variables"]["t2m"]
    assert v["missing_valid_times"] == 1 and v["missing_forecasts"] == sum(4 - n for n in oracle["n"])
    assert any("1 valid times" in n for n in result["notes"])


def _wb2_lat_weights(lat_deg: np.ndarray) -> np.ndarray:
    """WeatherBench2's formula: cell bounds at the midpoints, the outer ones at the poles."""
    lat = np.deg2rad(lat_deg)
    bounds = np.concatenate([[-np.pi / 2], (lat[:-1] + lat[1:]) / 2, [np.pi / 2]])
    area = np.sin(bounds[1:]) - np.sin(bounds[:-1])
    return area / area.mean()


def test_global_grid_equals_weatherbench2_formula_with_acc(tmp_path: Path) -> None:
    lat = -87.1875 + 5.625 * np.arange(32)
    lon = 5.625 * np.arange(64)
    ds, fc = _forecast(lat, lon, seed=3)
    write_forecast(ds, tmp_path / "f.zarr")
    times = _hourly("2019-12-31T00", "2020-01-05T00")  # the last init's longer leads are missing
    truth = _truth(lat, lon, times, seed=4)
    clim_field = np.random.default_rng(5).normal(280.5, 1.0, (lat.size, lon.size))
    clim = xr.Dataset({"2m_temperature": (("latitude", "longitude"), clim_field, {"units": "K"})},
                      coords={"latitude": lat, "longitude": lon})
    result = score_forecast(tmp_path / "f.zarr", truth, climatology=clim)
    w2d = np.repeat(_wb2_lat_weights(lat)[:, None], lon.size, axis=1)
    oracle = _oracle(fc, truth, w2d, clim=clim_field)
    _assert_matches(result, oracle, acc=True)
    # WB2's RMSE: sqrt(time-mean(weighted spatial mean of squared error)), written out once more
    rows = [k for k, t0 in enumerate(INITS) if t0 + np.timedelta64(6, "h") in truth["time"].values]
    se = [(_wb2_lat_weights(lat)[:, None] * (fc[k, 0] - truth["t2m"].sel(time=INITS[k] + np.timedelta64(6, "h"))
                                              .values.astype(np.float64)) ** 2).mean() for k in rows]
    assert result["variables"]["t2m"]["per_lead"][0]["rmse"] == pytest.approx(np.sqrt(np.mean(se)), rel=1e-12)


def test_every_layout_and_a_larger_truth_grid_give_the_same_scores(tmp_path: Path) -> None:
    lat = np.arange(55.0, 50.0, -1.0)
    lon = np.arange(0.0, 6.0, 1.0)
    ds, fc = _forecast(lat, lon, seed=7)
    big_lat, big_lon = np.arange(45.0, 61.0, 1.0), np.arange(-5.0, 10.0, 1.0)
    times = _hourly("2019-12-31T00", "2020-01-06T00")
    truth = _truth(big_lat, big_lon, times, seed=8)
    truth.to_netcdf(tmp_path / "truth.nc")
    small = truth.sel(lat=lat, lon=lon)
    oracle = _oracle(fc, small, np.repeat(np.cos(np.deg2rad(lat))[:, None], lon.size, axis=1))
    write_forecast(ds, tmp_path / "f.nc")
    write_forecast(ds, tmp_path / "wb2.zarr", layout="wb2")
    for name, var in (("f.nc", "t2m"), ("wb2.zarr", "2m_temperature")):
        result = score_forecast(tmp_path / name, tmp_path / "truth.nc")
        _assert_matches(result, oracle, var=var)
        assert any("cut to the forecast grid" in n for n in result["notes"])
    one = ds.isel(time=[1])
    write_forecast(one, tmp_path / "vt.nc", layout="valid-time")
    result = score_forecast(tmp_path / "vt.nc", tmp_path / "truth.nc")
    assert result["layout"] == "valid-time" and result["init_times"] == 1
    rmse = [r["rmse"] for r in result["variables"]["t2m"]["per_lead"]]
    ref = score_forecast(one, tmp_path / "truth.nc")
    assert rmse == pytest.approx([r["rmse"] for r in ref["variables"]["t2m"]["per_lead"]], rel=1e-12)


def test_frame_data_get_openstl_image_metrics(tmp_path: Path) -> None:
    from svqcast.verify.metrics import psnr_frames, ssim_frames

    rng = np.random.default_rng(0)
    spec = DataSpec(dataset="t", kind="video", channel_names=["frames"], variables=["frames"], units=["1"],
                    dims=["y", "x"], coords={"y": list(range(16)), "x": list(range(16))},
                    time_step_seconds=None, t_in=2, t_out=2, idx_in=[-1, 0], idx_out=[1, 2],
                    mean=[0.0], std=[1.0], time_kind="frame")
    values = rng.uniform(0, 1, (2, 2, 1, 16, 16)).astype(np.float32)
    ds = build_forecast_dataset(values, spec, np.array([3, 5]), [1, 2], source="t", history="t",
                                trained_steps=2, model_ref="t")
    truth_v = rng.uniform(0, 1, (10, 16, 16)).astype(np.float32)
    truth = xr.Dataset({"frames": (("t", "y", "x"), truth_v)}, coords={"y": np.arange(16), "x": np.arange(16)})
    result = score_forecast(ds, truth)
    row = result["variables"]["frames"]["per_lead"][0]
    assert row["lead_time_seconds"] is None and row["lead_steps"] == 1 and row["n"] == 2
    f = values[:, 0, 0].astype(np.float64)
    o = truth_v[[4, 6]].astype(np.float64)
    assert row["mse"] == pytest.approx(((f - o) ** 2).sum(axis=(1, 2)).mean(), rel=1e-12)
    assert row["rmse"] == pytest.approx(np.sqrt(((f - o) ** 2).mean(axis=(1, 2)).mean()), rel=1e-12)
    assert row["ssim"] == pytest.approx(ssim_frames(f[:, None], o[:, None]).mean(), rel=1e-9)
    assert row["psnr"] == pytest.approx(psnr_frames(f[:, None], o[:, None]).mean(), rel=1e-9)


def test_refusals_name_the_problem(tmp_path: Path) -> None:
    lat, lon = np.arange(55.0, 50.0, -1.0), np.arange(0.0, 6.0, 1.0)
    ds, _ = _forecast(lat, lon)
    times = _hourly("2019-12-31T00", "2020-01-06T00")
    dup = _truth(lat, lon, np.concatenate([times, times[5:6]]))
    with pytest.raises(DataError, match="appears more than once"):
        score_forecast(ds, dup)
    with pytest.raises(DataError, match="covers none"):
        score_forecast(ds, _truth(lat, lon, _hourly("2021-01-01", "2021-01-03")))
    with pytest.raises(DataError, match="grid mismatch"):
        score_forecast(ds, _truth(lat + 0.5, lon, times))
    with pytest.raises(DataError, match="not a forecast file"):
        score_forecast(_truth(lat, lon, times), _truth(lat, lon, times))
    # a NaN cell (land, outside radar coverage) is left out of that field's means, the latitude
    # weights renormalised over the valid cells; a truth field with no valid cell is a missing time
    holed = ds.copy(deep=True)
    holed["t2m"][2, 1, 0, 0] = np.nan
    truth = _truth(lat, lon, times)
    got = score_forecast(holed, truth, bootstrap=0)["variables"]["t2m"]
    fc = holed["t2m"].values.astype(np.float64)
    obs = {t: truth["t2m"].values[k].astype(np.float64) for k, t in enumerate(times.tolist())}
    w = np.repeat(np.cos(np.deg2rad(lat))[:, None], lon.size, axis=1)
    se = []
    for i, t0 in enumerate(INITS):
        err = fc[i, 1] - obs[(t0 + np.timedelta64(12, "h")).astype("datetime64[ns]").tolist()]
        ok = np.isfinite(err)
        se.append(np.sum(w[ok] * err[ok] ** 2) / np.sum(w[ok]))
    assert got["per_lead"][1]["rmse"] == pytest.approx(np.sqrt(np.mean(se)), rel=1e-12)
    assert got["masked_cells"] == 0  # the cell is valid at the other leads
    truth["t2m"][int(np.flatnonzero(times == np.datetime64("2020-01-02T00", "ns"))[0])] = np.nan
    v = score_forecast(ds, truth)["variables"]["t2m"]
    assert v["missing_valid_times"] == 1 and v["missing_forecasts"] == 2  # 01-01T12 +12 h, 01-01T00 +24 h


def test_cli_json_csv_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:

    lat, lon = np.arange(55.0, 50.0, -1.0), np.arange(0.0, 6.0, 1.0)
    ds, _ = _forecast(lat, lon)
    write_forecast(ds, tmp_path / "f.nc")
    _truth(lat, lon, _hourly("2019-12-31T00", "2020-01-06T00")).to_netcdf(tmp_path / "truth.nc")

    def run(*args: object) -> tuple[int, str, str]:
        return run_cli(args, capsys)

    code, out, err = run("score", tmp_path / "f.nc", "--truth", tmp_path / "truth.nc", "--format", "json")
    assert code == 0 and err == ""
    data = json.loads(out)
    v = data["variables"]["t2m"]
    assert [r["lead_time"] for r in v["per_lead"]] == ["PT6H", "PT12H", "PT18H", "P1D"]
    assert set(v["per_lead"][0]) >= {"lead_time_seconds", "lead_time", "rmse", "mae", "bias", "n"}
    assert set(v["overall"]) >= {"rmse", "mae", "bias", "n"} and "acc" not in v["overall"]
    assert set(v["references"]["persistence"]) == {"per_lead", "overall", "regions"}
    code, out, _ = run("score", tmp_path / "f.nc", "--truth", tmp_path / "truth.nc", "--format", "csv")
    lines = out.strip().splitlines()
    assert code == 0 and lines[0].startswith("variable,level,region,reference,lead_time") and len(lines) == 1 + 2 * 5
    code, _, err = run("score", tmp_path / "f.nc", "--truth", tmp_path / "truth.nc", "--plot", tmp_path / "x.xyz")
    assert code == 2 and "figure format" in err and err.count("\n") == 1
    pytest.importorskip("matplotlib")
    code, _, _ = run("score", tmp_path / "f.nc", "--truth", tmp_path / "truth.nc", "--plot", tmp_path / "s.png")
    assert code == 0 and (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


def test_a_grib_forecast_scores_like_its_netcdf_twin(tmp_path: Path) -> None:
    """cfgrib's forecast layout (time, step, latitude, longitude), written here with eccodes."""
    eccodes = pytest.importorskip("eccodes")
    pytest.importorskip("cfgrib")
    lat, lon = np.arange(55.0, 50.0, -1.0), np.arange(0.0, 6.0, 1.0)
    ds, fc = _forecast(lat, lon, seed=11)
    sample = eccodes.codes_grib_new_from_samples("regular_ll_sfc_grib2")
    with open(tmp_path / "f.grib2", "wb") as fh:
        for i, t0 in enumerate(INITS):
            stamp = str(t0)
            for j, lead in enumerate(LEADS):
                msg = eccodes.codes_clone(sample)
                for key, value in {
                    "Ni": lon.size, "Nj": lat.size, "latitudeOfFirstGridPointInDegrees": lat[0],
                    "latitudeOfLastGridPointInDegrees": lat[-1], "longitudeOfFirstGridPointInDegrees": lon[0],
                    "longitudeOfLastGridPointInDegrees": lon[-1], "iDirectionIncrementInDegrees": 1.0,
                    "jDirectionIncrementInDegrees": 1.0, "dataDate": int(stamp[:10].replace("-", "")),
                    "dataTime": int(stamp[11:13]) * 100, "shortName": "2t", "step": lead * STEP_H,
                    "packingType": "grid_ieee",
                }.items():
                    eccodes.codes_set(msg, key, value)
                eccodes.codes_set_values(msg, fc[i, j].ravel())
                eccodes.codes_write(msg, fh)
                eccodes.codes_release(msg)
    eccodes.codes_release(sample)
    truth = _truth(lat, lon, _hourly("2019-12-31T00", "2020-01-05T00"), seed=12)
    result = score_forecast(tmp_path / "f.grib2", truth)
    assert result["layout"] == "grib"
    _assert_matches(result, _oracle(fc, truth, np.repeat(np.cos(np.deg2rad(lat))[:, None], lon.size, axis=1)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.grib2"]  # no .idx written
