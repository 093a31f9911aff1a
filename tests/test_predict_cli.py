"""`svqcast predict` end to end on the real embedded ERA5 sample.

The bundled zoo model (the default) is used where the claim is about the shipped product
(CF file, Kelvin, plausible values); a tiny random-weight checkpoint where the claim is
about input handling (the same forecast from every spelling of the same input).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from _cli import run_cli
from _predict_fixtures import SAMPLE, make_tiny_checkpoint, open_sample

INIT = "2019-03-29T00:00"


@pytest.fixture(scope="module")
def sample_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two days of the sample ending at INIT + 1 day (small and quick to read)."""
    path = tmp_path_factory.mktemp("inputs") / "input.nc"
    open_sample().sel(time=slice("2019-03-28T00", "2019-03-30T00")).to_netcdf(path)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")


run = run_cli


REQUIRED_GLOBAL = ("Conventions", "source", "history", "references", "title")


def cf_check(path: Path) -> list[str]:
    """The CF attributes docs/architecture.md requires; returns the problems found."""
    import netCDF4

    problems = []
    with netCDF4.Dataset(path) as nc:
        for attr in REQUIRED_GLOBAL:
            if not getattr(nc, attr, None):
                problems.append(f"global attribute {attr} missing")
        if getattr(nc, "Conventions", "") != "CF-1.8":
            problems.append("Conventions is not CF-1.8")
        want_dims = {"time", "lead_time", "lat", "lon", "bnds"}  # bnds: the lat/lon cell bounds
        if set(nc.dimensions) != want_dims:
            problems.append(f"dims {set(nc.dimensions)} != {want_dims}")
        expect = {
            "time": {"standard_name": "forecast_reference_time"},
            "lead_time": {"standard_name": "forecast_period"},
            "lat": {"standard_name": "latitude", "units": "degrees_north"},
            "lon": {"standard_name": "longitude", "units": "degrees_east"},
        }
        for name, attrs in expect.items():
            for k, v in attrs.items():
                if getattr(nc[name], k, None) != v:
                    problems.append(f"{name}.{k} != {v}")
        for name in ("time", "lead_time"):
            if not getattr(nc[name], "units", None):
                problems.append(f"{name} has no units")
        data_vars = [v for v in nc.variables if nc[v].dimensions == ("time", "lead_time", "lat", "lon")]
        if not data_vars:
            problems.append("no forecast variable")
        for v in data_vars:
            var = nc[v]
            if var.dtype != np.float32:
                problems.append(f"{v} is {var.dtype}, not float32")
            if not getattr(var, "units", None):
                problems.append(f"{v} has no units")
            if not (getattr(var, "standard_name", None) or getattr(var, "long_name", None)):
                problems.append(f"{v} has neither standard_name nor long_name")
            if not var.filters().get("zlib"):
                problems.append(f"{v} not zlib-compressed")
            if var.chunking() != [1, 1, var.shape[2], var.shape[3]]:
                problems.append(f"{v} chunks {var.chunking()} are not one per lead time")
    return problems


# --------------------------------------------------------------------------- the shipped model


def test_predict_with_the_bundled_model_writes_a_cf_file_in_kelvin(sample_file: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "forecast.nc"
    code, stdout, err = run(["predict", sample_file, "-o", out, "--init-time", INIT, "--lead-time", "24h",
                             "--format", "json"], capsys)
    assert code == 0, err
    report = json.loads(stdout)
    assert report["autoregressive"] is True and report["steps"] == 24
    assert cf_check(out) == []
    ds = xr.open_dataset(out)
    assert ds["t2m"].attrs["units"] == "K" and ds["t2m"].attrs["standard_name"] == "air_temperature"
    assert ds["t2m"].shape == (1, 24, 32, 48)
    values = ds["t2m"].values
    assert np.isfinite(values).all()
    # physically plausible for the UK in late March, and close to what actually happened
    assert 255.0 < values.min() and values.max() < 300.0
    truth = open_sample()["t2m"].sel(time=slice("2019-03-29T01", "2019-03-30T00")).values
    assert np.abs(values[0] - truth).mean() < 4.0
    assert ds.attrs["svqcast_autoregressive"] == "true"
    assert ds.attrs["svqcast_model"] == "era5-uk-t2m_gsta_svq"
    assert "2312.03406" in ds.attrs["references"] and "svqcast predict" in ds.attrs["history"]


def test_api_predict_returns_what_the_cli_writes(sample_file: Path, tmp_path: Path, capsys) -> None:
    import svqcast

    out = tmp_path / "f.nc"
    assert run(["predict", sample_file, "-o", out, "--init-time", INIT], capsys)[0] == 0
    fc = svqcast.load_model()
    api = fc.predict(xr.open_dataset(sample_file), steps=12, init_time=INIT)
    written = xr.open_dataset(out)
    np.testing.assert_array_equal(api["t2m"].values, written["t2m"].values)
    assert list(api.dims) == list(written.dims)
    for key in ("Conventions", "source", "references", "svqcast_autoregressive"):
        assert api.attrs[key] == written.attrs[key]


# --------------------------------------------------------------------------- same forecast, other spellings


def _variants(tmp: Path) -> dict[str, Path]:
    base = xr.open_dataset(SAMPLE).sel(time=slice("2019-03-28T00", INIT)).load()
    out = {}
    out["lat_reversed"] = base.isel(lat=slice(None, None, -1))
    wrapped = base.assign_coords(lon=np.mod(base["lon"] + 360.0, 360.0)).sortby("lon")  # 0..360
    out["lon_0_360"] = wrapped
    out["renamed"] = base.rename(t2m="2m_temperature")
    c = base.copy()
    c["t2m"] = base["t2m"] - 273.15
    c["t2m"].attrs["units"] = "degC"
    out["celsius"] = c
    paths = {}
    for name, ds in out.items():
        paths[name] = tmp / f"{name}.nc"
        ds.to_netcdf(paths[name])
    base.to_netcdf(tmp / "base.nc")
    paths["base"] = tmp / "base.nc"
    return paths


def test_equivalent_inputs_give_the_same_forecast(tmp_path: Path, capsys) -> None:
    """With the bundled default model: every spelling of the same input, the same forecast."""
    paths = _variants(tmp_path)
    forecasts = {}
    for name, path in paths.items():
        out = tmp_path / f"fc_{name}.nc"
        code, _, err = run(["predict", path, "-o", out, "--steps", "6"], capsys)
        assert code == 0, f"{name}: {err}"
        forecasts[name] = xr.open_dataset(out)["t2m"].values
    base = forecasts.pop("base")
    assert base.shape == (1, 6, 32, 48)
    for name, values in forecasts.items():
        tol = 2e-3 if name == "celsius" else 0.0  # float32 round trip through degC
        np.testing.assert_allclose(values, base, atol=tol, rtol=0, err_msg=name)


# --------------------------------------------------------------------------- bad inputs


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("bad")
    base = xr.open_dataset(SAMPLE).sel(time=slice("2019-03-28T00", INIT)).load()
    cases = {
        "missing_variable": base.rename(t2m="sst"),
        "wrong_grid": base.isel(lat=slice(0, 20)),
        "too_few_steps": base.isel(time=slice(-4, None)),
    }
    nan = base.copy(deep=True)
    nan["t2m"][-1, 0, 0] = np.nan
    cases["nans"] = nan
    paths = {}
    for name, ds in cases.items():
        paths[name] = tmp / f"{name}.nc"
        ds.to_netcdf(paths[name])
    garbage = tmp / "unreadable.nc"
    garbage.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)
    paths["unreadable"] = garbage
    return paths


@pytest.mark.parametrize(
    "case,needle,code",
    [
        ("missing_variable", "no variable for the model's 't2m'", 3),
        ("wrong_grid", "grid mismatch", 3),
        ("too_few_steps", "too few time steps", 3),
        ("nans", "NaN", 3),
        ("unreadable", "unreadable.nc: cannot read", 3),
    ],
)
def test_bad_inputs_one_line_no_traceback(case, needle, code, bad_inputs, tiny: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "never.nc"
    rc, stdout, err = run(["predict", bad_inputs[case], "-o", out, "--model", tiny], capsys)
    assert rc == code
    assert needle in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert "Traceback" not in err + stdout
    assert not out.exists()


def test_output_in_missing_directory_is_refused_before_compute(sample_file: Path, tiny: Path, tmp_path: Path,
                                                               capsys) -> None:
    rc, _, err = run(["predict", sample_file, "-o", tmp_path / "no" / "such" / "f.nc", "--model", tiny], capsys)
    assert rc == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1


def test_overwrite_and_check(sample_file: Path, tiny: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "f.nc"
    out.write_text("keep me")
    rc, _, err = run(["predict", sample_file, "-o", out, "--model", tiny], capsys)
    assert rc == 2 and "--overwrite" in err and out.read_text() == "keep me"
    rc, stdout, _ = run(["predict", sample_file, "--check", "--model", tiny, "--init-time", INIT, "--format", "json"],
                        capsys)
    report = json.loads(stdout)
    assert rc == 0 and report["ok"] and report["init_times"][0].startswith("2019-03-29T00")
    assert report["variables"] == {"t2m": "t2m"} and report["steps"] == 12
    rc, _, _ = run(["predict", sample_file, "-o", out, "--model", tiny, "--overwrite", "--steps", "3"], capsys)
    assert rc == 0 and xr.open_dataset(out).sizes["lead_time"] == 3


def test_a_real_subprocess_run_has_no_traceback(bad_inputs, tiny: Path, tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "svqcast.cli.main", "predict", str(bad_inputs["nans"]), "-o", str(tmp_path / "x.nc"),
         "--model", str(tiny)],
        capture_output=True, text=True, timeout=180,
    )
    assert res.returncode == 3 and "Traceback" not in res.stderr and res.stderr.startswith("error: ")


# --------------------------------------------------------------------------- roll-out arithmetic


@pytest.mark.parametrize("t_out", [12, 4])
def test_autoregressive_rollout_feeds_forecasts_back(t_out: int) -> None:
    """A network that returns its last T_out input frames + 1 (normalised units): lead L
    must equal the observed frame L - k*T_out plus k standard deviations, k = ceil(L/T_out)."""
    import math

    import torch

    from svqcast.forecast.forecaster import Forecaster

    class Echo(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, -t_out:] + 1.0

    ds = open_sample()
    from _predict_fixtures import era5_spec

    spec = era5_spec(ds, t_out=t_out, idx_out=list(range(1, t_out + 1)), mean=[280.0], std=[2.0])
    fc = Forecaster(net=Echo(), spec=spec, ref="echo")
    out = fc.predict(ds, steps=30, init_time=INIT)
    obs = ds["t2m"].astype(np.float64)
    t0 = np.datetime64(INIT, "ns")
    assert out.attrs["svqcast_network_calls"] == math.ceil(30 / t_out)
    for lead in (1, t_out, t_out + 1, 17, 30):
        k = math.ceil(lead / t_out)
        src = obs.sel(time=t0 + np.timedelta64(lead - k * t_out, "h")).values
        np.testing.assert_allclose(out["t2m"].values[0, lead - 1], src + 2.0 * k, atol=1e-3)


# --------------------------------------------------------------------------- output formats and layouts


def test_every_format_and_layout_reads_back_to_the_same_numbers(sample_file: Path, tiny: Path, tmp_path: Path,
                                                                 capsys) -> None:
    import zarr

    outs = {"nc": (tmp_path / "f.nc", []), "zarr": (tmp_path / "f.zarr", []),
            "wb2": (tmp_path / "wb2.zarr", ["--layout", "wb2"]), "vt": (tmp_path / "vt.nc", ["--layout", "valid-time"])}
    for name, (path, extra) in outs.items():
        code, _, err = run(["predict", sample_file, "-o", path, "--model", tiny, "--init-time", INIT, "--steps", "3",
                            *extra], capsys)
        assert code == 0, f"{name}: {err}"
    ref = xr.open_dataset(outs["nc"][0])
    values = ref["t2m"].values
    # a real consolidated zarr (v2) store, one chunk per (init, lead), not an HDF5 file named .zarr
    store = outs["zarr"][0]
    assert store.is_dir() and (store / ".zmetadata").is_file()
    group = zarr.open_consolidated(str(store), mode="r")
    assert group["t2m"].chunks == (1, 1, 32, 48) and group["time"].dtype == np.int32
    np.testing.assert_array_equal(xr.open_zarr(store)["t2m"].values, values)
    # WeatherBench2: names, dims and ascending axes; the same numbers at the same coordinates
    wb2 = xr.open_zarr(outs["wb2"][0])
    assert list(wb2["2m_temperature"].dims) == ["time", "prediction_timedelta", "latitude", "longitude"]
    assert np.all(np.diff(wb2["latitude"].values) > 0) and np.all(np.diff(wb2["longitude"].values) > 0)
    back = wb2["2m_temperature"].sel(latitude=ref["lat"].values, longitude=ref["lon"].values).values
    np.testing.assert_array_equal(back, values)
    np.testing.assert_array_equal(wb2["prediction_timedelta"].values, ref["lead_time"].values)
    # valid time: one initialisation, time = valid time
    vt = xr.open_dataset(outs["vt"][0])
    np.testing.assert_array_equal(vt["time"].values, ref["valid_time"].values[0])
    np.testing.assert_array_equal(vt["t2m"].values, values[0])
    assert vt["forecast_reference_time"].values == ref["time"].values[0]


def test_output_suffix_device_and_layout_refusals_are_one_line(sample_file: Path, tiny: Path, tmp_path: Path,
                                                               capsys) -> None:
    import torch

    rc, _, err = run(["predict", sample_file, "-o", tmp_path / "f.grib", "--model", tiny], capsys)
    assert rc == 2 and "NAME.nc" in err and "NAME.zarr" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "f.grib").exists()
    rc, _, err = run(["predict", sample_file, "-o", tmp_path / "v.nc", "--model", tiny, "--layout", "valid-time",
                      "--init-time", INIT, "--init-time", "2019-03-29T06:00"], capsys)
    assert rc == 2 and "one initialisation" in err and not (tmp_path / "v.nc").exists()
    if not torch.cuda.is_available():
        rc, _, err = run(["predict", sample_file, "-o", tmp_path / "c.nc", "--model", tiny, "--device", "cuda"], capsys)
        assert rc == 2 and "--device cpu" in err


def test_json_report_has_iso_lead_times_and_no_progress(sample_file: Path, tiny: Path, tmp_path: Path, capsys) -> None:
    rc, out, err = run(["predict", sample_file, "-o", tmp_path / "f.nc", "--model", tiny, "--init-time", INIT,
                        "--steps", "2", "--format", "json"], capsys)
    report = json.loads(out)
    assert rc == 0 and err == ""
    assert report["lead_times"] == ["PT1H", "PT2H"] and report["lead_time_seconds"] == [3600.0, 7200.0]
    rc, _, err = run(["predict", sample_file, "-o", tmp_path / "g.nc", "--model", tiny, "--init-time", INIT,
                      "--steps", "2"], capsys)
    assert rc == 0 and "forecasting (initialisations x steps): 1/1" in err  # plain lines off a terminal


def test_default_output_passes_cf_compliance_checker(sample_file: Path, tiny: Path, tmp_path: Path, capsys) -> None:
    """IOOS compliance-checker cf:1.8: no high-priority finding except the section 5.1 heuristic
    that wants the `time` dimension to be the valid time (ours is the initialisation)."""
    pytest.importorskip("compliance_checker")
    out = tmp_path / "f.nc"
    args = ["predict", sample_file, "-o", out, "--model", tiny, "--init-time", INIT, "--steps", "3"]
    assert run(args, capsys)[0] == 0
    report = tmp_path / "cc.json"
    # in its own process: the checker's C extensions (pyproj, shapely) and zarr's I/O thread
    # from other tests in this process can crash the interpreter at exit when they meet
    code = ("import sys; from compliance_checker.runner import CheckSuite, ComplianceChecker; "
            "CheckSuite.load_all_available_checkers(); "
            "ComplianceChecker.run_checker(sys.argv[1], ['cf:1.8'], 0, 'normal', output_filename=sys.argv[2], "
            "output_format='json')")
    res = subprocess.run([sys.executable, "-c", code, str(out), str(report)], capture_output=True, text=True,
                         timeout=300)
    assert report.is_file(), res.stderr
    result = json.loads(report.read_text())["cf:1.8"]
    errors = [msg for item in result["high_priorities"] if item["value"][0] != item["value"][1] for msg in item["msgs"]]
    assert errors == ["Coordinate variable 'time' should have standard_name='time', found: 'forecast_reference_time'"]


def test_valid_time_layout_is_read_by_cdo(sample_file: Path, tiny: Path, tmp_path: Path, capsys) -> None:
    """`cdo sinfo` rejects the default layout ("Unsupported dimension lead_time") by design;
    the valid-time layout is the one for CDO. Runs where the `cdo` binary is installed."""
    import shutil

    if shutil.which("cdo") is None:
        pytest.skip("the cdo binary is not installed")
    out = tmp_path / "vt.nc"
    assert run(["predict", sample_file, "-o", out, "--model", tiny, "--init-time", INIT, "--steps", "3",
                "--layout", "valid-time"], capsys)[0] == 0
    res = subprocess.run(["cdo", "sinfo", str(out)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "3 steps" in res.stdout and "2019-03-29 01:00:00" in res.stdout and "48x32" in res.stdout


def test_shell_completion_is_offered(capsys) -> None:
    code, out, _ = run(["--help"], capsys)
    assert code == 0 and "--install-completion" in out and "--show-completion" in out
