"""Weather data at its real shape, end to end through the CLI: variables on pressure levels,
and fields with masked cells (the real ERSST file, land missing in every month).

Every run is real: prepare, one training epoch of a tiny network, evaluate, predict and score;
the numbers checked are recomputed here with numpy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from _cli import run_cli

from svqcast.data.masks import pack_mask, unpack_mask
from svqcast.errors import DataError

ERSST = Path("global_coarse") / "ersst_v5_sst.mnmean.nc"  # inside the optional shared data (conftest)
TINY = ["--set", "model.hid_S=8", "--set", "model.hid_T=16", "--set", "model.N_T=2", "--set", "model.mlp_ratio=2.0",
        "--set", "train.batch_size=4", "--set", "train.max_steps_per_epoch=3", "--set", "train.max_val_steps=1",
        "--progress", "none", "--max-epochs", "1", "--preset", "era5-uk-t2m_gsta"]
TIMES = np.arange(np.datetime64("2020-01-01T00", "ns"), np.datetime64("2020-01-11T00", "ns"), np.timedelta64(6, "h"))
LAT, LON = np.arange(60.0, 40.0, -2.0), np.arange(-10.0, 10.0, 2.0)
SHORT = ["--t-in", "2", "--t-out", "2"]


@pytest.fixture()
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SVQCAST_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def _levels_file(path: Path) -> Path:
    rng = np.random.default_rng(0)
    n, h, w = TIMES.size, LAT.size, LON.size
    wave = np.sin(np.arange(n) / 4.0)[:, None, None]
    temp = 250 + 10 * wave[:, None] + rng.normal(0, 1, (n, 3, h, w)) + np.array([0, 10, 20])[None, :, None, None]
    xr.Dataset(
        {"temperature": (("time", "pressure", "latitude", "longitude"), temp.astype("f4"),
                         {"units": "K", "long_name": "air temperature"}),
         "t2m": (("time", "latitude", "longitude"), (280 + 5 * wave + rng.normal(0, 1, (n, h, w))).astype("f4"),
                 {"units": "K"}),
         "msl": (("time", "latitude", "longitude"), (101000 + 300 * wave + rng.normal(0, 50, (n, h, w))).astype("f4"),
                 {"units": "Pa"})},
        coords={"time": TIMES, "pressure": ("pressure", [500.0, 700.0, 850.0], {"units": "hPa"}),
                "latitude": LAT, "longitude": LON}).to_netcdf(path)
    return path


def test_levels_prepare_train_evaluate_predict(sandbox: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _levels_file(sandbox / "pl.nc")
    code, _, err = run_cli(["prepare", src, "--name", "pl", "--levels", "all", "--t-in", "2", "--t-out", "2"], capsys)
    assert code == 0, err
    code, _, err = run_cli(["train", "--dataset", "pl", "--run-dir", sandbox / "run", *TINY,
                            "--set", "model.in_shape=[2,5,10,10]", "--set", "model.out_frames=2"], capsys)
    assert code == 0, err
    code, out, err = run_cli(["evaluate", sandbox / "run", "--format", "json"], capsys)
    assert code == 0, err
    channels = ["temperature@500", "temperature@700", "temperature@850", "t2m", "msl"]
    report = json.loads(out)
    assert report["channels"] == channels and set(report["scores"]["model"]["wb2"]["rmse"]) == set(channels)
    code, out, err = run_cli(["evaluate", sandbox / "run", "--format", "netcdf", "-o", sandbox / "res.nc"], capsys)
    assert code == 0, err
    code, out, _ = run_cli(["evaluate", sandbox / "run", "--format", "json", "--per-lead-time"], capsys)
    per_lead = json.loads(out)["per_lead_time"]["model"]["rmse"]
    with xr.open_dataset(sandbox / "res.nc") as res:  # WeatherBench2's results layout, per (variable, level)
        assert res["temperature"].dims == ("metric", "region", "lead_time", "level")
        assert res["t2m"].dims == ("metric", "region", "lead_time")
        np.testing.assert_allclose(res["temperature"].sel(metric="rmse", region="global", level=700).values,
                                   per_lead["temperature@700"], rtol=1e-12)
    for layout, name, level_dim in (("cf", "f.nc", "pressure"), ("wb2", "f.zarr", "level")):
        code, _, err = run_cli(["predict", src, "--model", sandbox / "run", "-o", sandbox / name, "--layout", layout,
                                "--init-time", "2020-01-08T00"], capsys)
        assert code == 0, err
        with xr.open_dataset(sandbox / name, engine="zarr" if name.endswith("zarr") else None) as fc:
            var = fc["temperature"]
            assert var.dims[2] == level_dim and fc[level_dim].values.tolist() == [500.0, 700.0, 850.0]
            assert fc[level_dim].attrs["units"] == "hPa" and var.attrs["long_name"] == "air temperature"
            assert {"t2m", "2m_temperature"} & set(fc.data_vars) and "temperature@500" not in fc
    # the forecast scores per (variable, level) against the input, matched by level value
    code, out, err = run_cli(["score", sandbox / "f.nc", "--truth", src, "--format", "json", "--bootstrap", "0"],
                             capsys)
    assert code == 0, err
    scored = json.loads(out)["variables"]
    assert {"temperature@500", "temperature@700", "temperature@850", "t2m", "msl"} == set(scored)
    with xr.open_dataset(sandbox / "f.nc") as fc, xr.open_dataset(src) as truth:
        f = fc["temperature"].sel(pressure=700).values[0, 1].astype(np.float64)
        o = truth["temperature"].sel(pressure=700, time=np.datetime64("2020-01-08T12")).values.astype(np.float64)
    w = np.repeat(np.cos(np.deg2rad(LAT))[:, None], LON.size, axis=1)
    want = np.sqrt(np.sum(w * (f - o) ** 2) / np.sum(w))
    assert scored["temperature@700"]["per_lead"][1]["rmse"] == pytest.approx(want, rel=1e-6)


def test_real_ersst_land_is_masked_end_to_end(sandbox: Path, shared_data: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    SHARED = shared_data / ERSST  # noqa: N806
    code, _, err = run_cli(["prepare", SHARED, "--name", "ersst", "--t-in", "3", "--t-out", "2"], capsys)
    assert code == 0, err
    stats = json.loads((sandbox / "data" / "ersst" / "prepared" / "stats.json").read_text())
    with xr.open_dataset(SHARED) as ds:
        sst = ds["sst"].load()
    land = np.isnan(sst.values).all(axis=0)
    valid = unpack_mask(stats["mask"], (1, *land.shape), "stats")
    assert valid is not None and np.array_equal(~valid[0], land) and stats["mask"]["masked_cells"] == [5032]
    code, _, err = run_cli(["train", "--dataset", "ersst", "--run-dir", sandbox / "run", *TINY,
                            "--set", "model.in_shape=[3,1,89,180]", "--set", "model.out_frames=2"], capsys)
    assert code == 0, err
    code, out, err = run_cli(["evaluate", sandbox / "run", "--format", "json"], capsys)
    assert code == 0, err
    scores = json.loads(out)["scores"]
    assert all(np.isfinite(v["rmse"]) for v in scores.values())
    code, _, err = run_cli(["predict", SHARED, "--model", sandbox / "run", "-o", sandbox / "f.nc",
                            "--init-time", "2019-06-01"], capsys)
    assert code == 0, err
    with xr.open_dataset(sandbox / "f.nc") as fc:
        f = fc["sst"].values.astype(np.float64)
    assert all(np.array_equal(np.isnan(f[0, k]), land) for k in range(f.shape[1]))  # NaN exactly over land
    code, out, err = run_cli(["score", sandbox / "f.nc", "--truth", SHARED, "--format", "json", "--bootstrap", "0"],
                             capsys)
    assert code == 0, err
    v = json.loads(out)["variables"]["sst"]
    assert v["masked_cells"] == int(land.sum())
    o = sst.sel(time=np.datetime64("2019-08-01")).values.astype(np.float64)  # lead 2 months
    ocean = ~land
    w = np.repeat(np.cos(np.deg2rad(sst["lat"].values.astype(np.float64)))[:, None], land.shape[1], axis=1)
    want = np.sqrt(np.sum((w * (f[0, 1] - o) ** 2)[ocean]) / np.sum(w[ocean]))
    assert v["per_lead"][1]["rmse"] == pytest.approx(want, rel=1e-9)


def _field(path: Path, holes: list[tuple[int, int, int]] = (), lat: np.ndarray = LAT) -> Path:
    rng = np.random.default_rng(1)
    values = (280 + rng.normal(0, 1, (TIMES.size, lat.size, LON.size))).astype("f4")
    values[:, 0, 0] = np.nan  # a cell missing in every step: masked, never an error
    for t, i, j in holes:
        values[t, i, j] = np.nan
    xr.Dataset({"t2m": (("time", "lat", "lon"), values, {"units": "K"})},
               coords={"time": TIMES, "lat": lat, "lon": LON}).to_netcdf(path)
    return path


def _mask(path: Path, lat: np.ndarray = LAT, value: float = 1.0) -> Path:
    keep = np.full((lat.size, LON.size), value)
    keep[:, :3] = 0.0
    xr.Dataset({"lsm": (("lat", "lon"), keep)}, coords={"lat": lat, "lon": LON}).to_netcdf(path)
    return path


def test_gaps_and_user_masks(sandbox: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gappy = _field(sandbox / "gappy.nc", holes=[(7, 4, 5)])
    code, _, err = run_cli(["prepare", gappy, "--name", "g", *SHORT], capsys)
    assert code == 3 and "missing at 2020-01-02T18:00:00" in err and "lat 52, lon 0" in err
    assert "--allow-missing" in err and not (sandbox / "data" / "g").exists()
    code, _, err = run_cli(["prepare", gappy, "--name", "g", "--allow-missing", *SHORT], capsys)
    assert code == 0, err
    stats = json.loads((sandbox / "data" / "g" / "prepared" / "stats.json").read_text())
    assert stats["missing_filled"] == {"train": 1} and stats["mask"]["masked_cells"] == [1]
    code, _, err = run_cli(["prepare", _field(sandbox / "ok.nc"), "--name", "m", *SHORT, "--mask",
                            f"{_mask(sandbox / 'lsm.nc')}:lsm"], capsys)
    assert code == 0, err
    stats = json.loads((sandbox / "data" / "m" / "prepared" / "stats.json").read_text())
    assert stats["mask"]["masked_cells"] == [LAT.size * 3]  # the mask's 3 columns hold the always-missing cell


@pytest.mark.parametrize(("args", "code", "needle"), [
    (["--levels", "300"], 3, "level 300 is not in 'temperature' (levels: 500, 700, 850)"),
    (["--levels", "a,b"], 2, "--levels"),
    (["--mask", "{other}:lsm"], 3, "regrid the mask"),
    (["--mask", "{zeros}:lsm"], 3, "keeps no cell"),
    (["--mask", "{ok}:nope"], 2, "no variable 'nope'"),
])
def test_bad_levels_and_masks_are_one_line_and_write_nothing(sandbox: Path, capsys: pytest.CaptureFixture[str],
                                                             args: list[str], code: int, needle: str) -> None:
    src = _levels_file(sandbox / "pl.nc")
    files = {"other": _mask(sandbox / "other.nc", lat=LAT + 0.5), "zeros": _mask(sandbox / "zeros.nc", value=0.0),
             "ok": _mask(sandbox / "ok.nc")}
    args = [a.format(**files) for a in args]
    got, _, err = run_cli(["prepare", src, "--name", "bad", *(["--levels", "all"] if "--levels" not in args else []),
                           *args], capsys)
    assert got == code and needle in err and len(err.strip().splitlines()) == 1, err
    assert not (sandbox / "data" / "bad").exists()


def test_packed_masks_round_trip_and_refuse_damage() -> None:
    valid = np.random.default_rng(2).random((2, 7, 9)) > 0.3
    packed = json.loads(json.dumps(pack_mask(valid)))
    assert np.array_equal(unpack_mask(packed, (2, 7, 9), "t"), valid)
    assert packed["masked_cells"] == [int((~valid[0]).sum()), int((~valid[1]).sum())]
    with pytest.raises(DataError, match="the mask is"):
        unpack_mask(packed, (2, 9, 7), "t")
    with pytest.raises(DataError, match="not a packed mask"):
        unpack_mask({**packed, "valid": "not base64!"}, (2, 7, 9), "t")
    assert unpack_mask(None, (1, 2, 3), "t") is None
