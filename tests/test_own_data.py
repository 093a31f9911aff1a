"""Your own data, end to end through the CLI: prepare, train, evaluate, predict, convert.

Every input is a small file the test writes (issue "Your own data": a NH-like netCDF with
packing, a pole row and yearly stamps; uint8 frames as .npy and as video; a zarr store
local and over HTTP; a folder of per-year files; a noleap calendar).
"""

from __future__ import annotations

import json
from pathlib import Path

import _own_data_files as files
import numpy as np
import pytest
import xarray as xr
from test_data_fixtures import Server, cli

from svqcast.data.store import open_split

TINY = ["--set", "model.hid_S=4", "--set", "model.hid_T=8", "--set", "model.N_T=2", "--set", "model.codebook_size=32",
        "--set", "train.batch_size=4", "--progress", "none"]


@pytest.fixture()
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    r = tmp_path / "data-root"
    monkeypatch.setenv("SVQCAST_DATA_DIR", str(r))
    return r


def _json(out: str) -> dict:
    return json.loads(out[out.index("{"):])


def test_nh_netcdf_prepare_train_evaluate_predict(tmp_path: Path, root: Path, capsys) -> None:
    src = tmp_path / "nh.nc"
    truth = files.nh_netcdf(src)
    args = ["prepare", str(src), "--name", "nh", "--t-in", "2", "--t-out", "1", "--format", "json"]
    code, out, err = cli(args, capsys)
    assert code == 0, err
    assert _json(out)["frames"] == {"train": 21, "val": 4, "test": 5}  # 70/15/15 of 30 years
    store = open_split(root / "nh" / "prepared", "train")
    np.testing.assert_allclose(store["data"].values[:, 0], truth[:21], atol=1e-3)  # CF-decoded, order kept
    np.testing.assert_array_equal(store["lat"].values, files.LAT)
    np.testing.assert_array_equal(store["lon"].values, files.LON)
    assert str(store["time"].values[0])[:10] == "1990-07-01"
    store.close()

    code, out, _ = cli(["datasets", "info", "nh", "--format", "json"], capsys)
    info = _json(out)
    assert info["user"] and info["units"] == ["unknown"] and info["extra"]["time_step"] == "1Y"
    assert info["extra"]["lat_order"] == "ascending" and info["extra"]["lon_convention"] == "-180..180"
    (entry,) = info["extra"]["source_files"].values()
    assert entry["bytes"] == src.stat().st_size and len(entry["sha256"]) == 64
    assert any("no units" in n for n in info["notes"])
    code, out, _ = cli(["datasets", "list", "--format", "json"], capsys)
    assert [r["user"] for r in _json_list(out) if r["name"] == "nh"] == [True]

    run = tmp_path / "run"
    code, _, err = cli(["train", "--dataset", "nh", "--max-epochs", "1", "--run-dir", str(run), *TINY], capsys)
    assert code == 0, err
    assert "default preset" in err
    spec = json.loads((run / "best" / "config.json").read_text())["data_spec"]
    assert spec["padding"] == [1, 1] and spec["coords"]["lat"] == files.LAT.tolist()

    code, out, err = cli(["evaluate", str(run), "--dataset", "nh", "--format", "json"], capsys)
    assert code == 0, err
    scores = _json(out)["scores"]
    assert {"model", "persistence"} <= set(scores) and np.isfinite(scores["model"]["mae"])

    fc = tmp_path / "fc.nc"
    code, _, err = cli(["predict", str(src), "--model", str(run), "-o", str(fc)], capsys)
    assert code == 0, err
    with xr.open_dataset(fc) as ds:
        np.testing.assert_allclose(ds["lat"].values, files.LAT, atol=1e-5)
        np.testing.assert_allclose(ds["lon"].values, files.LON, atol=1e-5)
        assert ds["z"].shape[-2:] == (29, 49)
        assert str(ds["valid_time"].values.ravel()[0])[:10] == "2020-07-01"  # one calendar year on

    # publishing: the card names the user dataset, its source file and digest
    from svqcast.zoo.hub import push_model

    sent: dict = {}

    def fake_upload(folder: Path, repo_id: str, revision, private: bool, message: str) -> str:
        sent.update({p.name: p.read_bytes() for p in folder.iterdir()})
        return f"https://hub.example/{repo_id}/commit/abc"

    push_model(run, "me/nh-z", upload=fake_upload)
    card = sent["README.md"].decode()
    assert "dataset: `nh`" in card and "prepared with `svqcast prepare` from `nh.nc`" in card
    assert entry["sha256"] in card and "padded to the encoder stride" in card


def _json_list(out: str) -> list:
    return json.loads(out[out.index("["):])


def test_frames_npy_and_video_prepare_train_evaluate_predict(tmp_path: Path, root: Path, capsys) -> None:
    frames = files.frames_uint8()
    np.save(tmp_path / "frames.npy", frames)
    files.video(tmp_path / "frames.avi", frames)
    for name, path in (("fr", "frames.npy"), ("vid", "frames.avi")):
        code, _, err = cli(["prepare", str(tmp_path / path), "--name", name, "--t-in", "4", "--t-out", "4"], capsys)
        assert code == 0, err
    with open_split(root / "fr" / "prepared", "test") as a, \
            open_split(root / "vid" / "prepared", "test") as b:
        assert a["data"].encoding["dtype"] == np.uint8
        np.testing.assert_allclose(a["data"].values[:, 0], frames[-9:] / 255.0, atol=1e-6)
        np.testing.assert_array_equal(a["data"].values, b["data"].values)  # lossless video == npy

    run = tmp_path / "run"
    code, _, err = cli(["train", "--dataset", "fr", "--max-epochs", "1", "--run-dir", str(run), *TINY], capsys)
    assert code == 0, err
    code, out, err = cli(["evaluate", str(run), "--dataset", "vid", "--format", "json"], capsys)
    assert code == 0, err
    model = _json(out)["scores"]["model"]
    assert 0 < model["psnr"] < 100 and -1 <= model["ssim"] <= 1

    code, _, err = cli(["predict", str(tmp_path / "frames.npy"), "--model", str(run), "-o", str(tmp_path / "fc.npy")],
                       capsys)
    assert code == 0, err
    fc = np.load(tmp_path / "fc.npy")
    assert fc.shape == (4, 18, 22) and fc.dtype == np.float32
    code, _, err = cli(["predict", str(tmp_path / "frames.avi"), "--model", str(run), "-o", str(tmp_path / "fc.nc")],
                       capsys)
    assert code == 0, err
    with xr.open_dataset(tmp_path / "fc.nc") as ds:
        np.testing.assert_allclose(ds["intensity"].values[0], fc, atol=1e-6)  # same input, same forecast


def test_zarr_local_and_https_and_per_year_folder(tmp_path: Path, root: Path, capsys) -> None:
    times = files.six_hourly(160)
    files.dataset(times).to_zarr(tmp_path / "c.zarr", mode="w", zarr_format=2, consolidated=True)
    years = tmp_path / "years"
    years.mkdir()
    daily = np.datetime64("2000-01-01", "ns") + np.arange(4 * 366) * np.timedelta64(1, "D")
    whole = files.dataset(daily, name="tp", units="mm").sel(time=slice("2000", "2003"))
    for y in (2000, 2001, 2002, 2003):
        whole.sel(time=str(y)).to_netcdf(years / f"tp_{y}.nc")
    server = Server()
    try:
        for rel in (p for p in (tmp_path / "c.zarr").rglob("*") if p.is_file()):
            server.files["/c.zarr/" + rel.relative_to(tmp_path / "c.zarr").as_posix()] = rel.read_bytes()
        sources = {"cz": str(tmp_path / "c.zarr"), "czh": server.url + "/c.zarr", "yrs": str(years),
                   "glob": str(years / "tp_*.nc")}
        for name, src in sources.items():
            code, _, err = cli(["prepare", src, "--name", name, "--t-in", "4", "--t-out", "4"], capsys)
            assert code == 0, f"{name}: {err}"
    finally:
        server.close()
    with open_split(root / "cz" / "prepared", "train") as a, \
            open_split(root / "czh" / "prepared", "train") as b:
        np.testing.assert_array_equal(a["data"].values, b["data"].values)
        np.testing.assert_array_equal(a["lat"].values, np.linspace(60, 40, 6))  # descending kept
        assert a["time"].values[1] - a["time"].values[0] == np.timedelta64(6, "h")
    for name in ("yrs", "glob"):
        parts = [open_split(root / name / "prepared", s) for s in ("train", "val", "test")]
        joined = np.concatenate([p["time"].values for p in parts])
        np.testing.assert_array_equal(joined, whole["time"].values)
        np.testing.assert_allclose(np.concatenate([p["data"].values[:, 0] for p in parts]), whole["tp"].values)
        for p in parts:
            p.close()


def test_noleap_is_converted_and_a_missing_leap_day_is_named(tmp_path: Path, root: Path, capsys) -> None:
    import cftime

    def write(path: Path, start: int, n: int, step_h: int, calendar: str) -> None:
        t = [cftime.datetime(start, 1, 1, calendar=calendar) + __import__("datetime").timedelta(hours=step_h * k)
             for k in range(n)]
        ds = files.dataset(np.arange(n))
        ds = ds.assign_coords(time=xr.DataArray(t, dims="time"))
        ds.to_netcdf(path, encoding={"time": {"units": "hours since 2000-01-01", "calendar": calendar}})

    write(tmp_path / "noleap.nc", 2001, 120, 6, "noleap")
    code, _, err = cli(["prepare", str(tmp_path / "noleap.nc"), "--name", "nl", "--t-in", "4", "--t-out", "4"], capsys)
    assert code == 0, err
    with open_split(root / "nl" / "prepared", "train") as ds:
        assert str(ds["time"].values[0])[:19] == "2001-01-01T00:00:00"
        assert ds["time"].values[1] - ds["time"].values[0] == np.timedelta64(6, "h")
    write(tmp_path / "leap.nc", 2004, 80, 24, "noleap")  # daily through February 2004
    code, _, err = cli(["prepare", str(tmp_path / "leap.nc"), "--name", "nl2", "--t-in", "4", "--t-out", "4"], capsys)
    assert code == 3 and "2004-02-29 is missing" in err
    write(tmp_path / "360.nc", 2001, 80, 24, "360_day")
    code, _, err = cli(["prepare", str(tmp_path / "360.nc"), "--name", "nl3", "--t-in", "4", "--t-out", "4"], capsys)
    assert code == 3 and "360_day" in err and len(err.strip().splitlines()) == 1
    assert not (root / "nl2").exists() and not (root / "nl3").exists()


def test_converted_official_checkpoint_with_data_forecasts_and_scores(tmp_path: Path, root: Path, capsys) -> None:
    import torch

    import svqcast
    from svqcast.config import parse_overrides
    from svqcast.zoo.convert import svqcast_to_openstl_key

    src = tmp_path / "nh.nc"
    files.nh_netcdf(src, units=True)
    assert cli(["prepare", str(src), "--name", "nh", "--t-in", "2", "--t-out", "1"], capsys)[0] == 0
    sets = ["model.in_shape=[2, 1, 29, 49]", "model.out_frames=1", "model.hid_S=4", "model.hid_T=8", "model.N_T=2",
            "model.codebook_size=32"]
    torch.manual_seed(0)
    model = svqcast.build_model("era5-uk-t2m_gsta_svq", overrides=parse_overrides(sets))
    torch.save({"state_dict": {svqcast_to_openstl_key(k, "svq"): v for k, v in model.state_dict().items()}},
               tmp_path / "checkpoint.pth")
    setargs = [a for s in sets for a in ("--set", s)]
    base = ["models", "convert", "openstl", str(tmp_path / "checkpoint.pth"), "--preset", "era5-uk-t2m_gsta_svq",
            *setargs]
    assert cli([*base, "-o", str(tmp_path / "bare")], capsys)[0] == 0
    code, _, err = cli(["predict", str(src), "--model", str(tmp_path / "bare"), "-o", str(tmp_path / "x.nc")], capsys)
    assert code == 3 and "--data" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli([*base, "--data", "nh", "-o", str(tmp_path / "conv")], capsys)
    assert code == 0, err
    meta = json.loads((tmp_path / "conv" / "config.json").read_text())
    stats = json.loads((root / "nh" / "prepared" / "stats.json").read_text())
    assert meta["data_spec"]["mean"] == stats["mean"] and meta["provenance"]["data_manifest_sha256"]
    code, _, err = cli(["predict", str(src), "--model", str(tmp_path / "conv"), "-o", str(tmp_path / "fc.nc")], capsys)
    assert code == 0, err
    code, out, err = cli(["evaluate", str(tmp_path / "conv"), "--dataset", "nh", "--format", "json"], capsys)
    assert code == 0, err
    assert np.isfinite(_json(out)["scores"]["model"]["rmse"])


def test_grib_prepares_like_netcdf_and_writes_no_index(tmp_path: Path, root: Path, capsys) -> None:
    pytest.importorskip("cfgrib")
    from test_io import _write_grib

    times = files.six_hourly(60)
    ds = files.dataset(times).assign_coords(lat=58.0 - 0.25 * np.arange(6), lon=-2.0 + 0.25 * np.arange(8))
    src = tmp_path / "in"
    src.mkdir()
    _write_grib(src / "t2m.grib2", ds)
    before = sorted(p.name for p in src.iterdir())
    code, _, err = cli(["prepare", str(src / "t2m.grib2"), "--name", "gr", "--t-in", "4", "--t-out", "4"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in src.iterdir()) == before  # cfgrib wrote no .idx next to the input
    with open_split(root / "gr" / "prepared", "train") as st:
        np.testing.assert_array_equal(st["data"].values[:, 0], ds["t2m"].values[:42])
        np.testing.assert_allclose(st["lat"].values, ds["lat"].values)


def test_any_grid_is_padded_inside_the_network_and_cropped_back() -> None:
    """29 x 49 through a stride-4 encoder: the output is on the input grid (what loss and
    scores compare), and the data spec records the padding the network applied."""
    import torch

    from svqcast.data.spec import DataSpec
    from svqcast.models.factory import build_simvp

    net = build_simvp({"in_shape": [2, 1, 29, 49], "hid_S": 4, "hid_T": 8, "N_S": 4, "N_T": 2, "out_frames": 1})
    assert net.stride == 4 and net.latent_shape == (4, 8, 13)
    y = net.eval()(torch.randn(2, 2, 1, 29, 49))
    assert y.shape == (2, 1, 1, 29, 49)
    spec = DataSpec(dataset="x", kind="weather", variables=["z"], units=["m"], channel_names=["z"], dims=["lat", "lon"],
                    coords={"lat": list(range(29)), "lon": list(range(49))}, time_step_seconds=3600.0, t_in=2,
                    t_out=1, mean=[0.0], std=[1.0], idx_in=[-1, 0], idx_out=[1])
    assert spec.for_network(4).padding == [3, 3] and DataSpec.from_dict(spec.for_network(4).to_dict()).padding == [3, 3]


def test_bare_train_uses_the_default_preset_and_dataset(tmp_path: Path, root: Path, capsys,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    # literally the command of the docs: one full epoch of the default preset (about 30 s here)
    code, out, err = cli(["train", "--max-epochs", "1"], capsys)
    assert code == 0, err
    assert "default preset era5-uk-t2m_gsta_svq" in err and "era5-uk-t2m" in err
    run = tmp_path / "runs" / "era5-uk-t2m_gsta_svq"
    cfg = json.loads((run / "last" / "config.json").read_text())
    assert cfg["config"]["data"]["dataset"] == "era5-uk-t2m" and cfg["config"]["model"]["hid_S"] == 16
    assert cfg["provenance"]["epoch"] == 1 and (run / "best" / "model.safetensors").is_file()


def test_download_weatherbench_dry_run_lists_every_variable_offline(tmp_path: Path, capsys) -> None:
    server = Server()
    try:
        for v in ("2m_temperature", "relative_humidity"):
            server.files[f"/s/m1524895/download?path=%2F5.625deg%2F{v}&files={v}_5.625deg.zip"] = b"x" * 1234
        code, out, err = cli(["download", "weatherbench", "--dry-run", "--root", str(tmp_path / "r"), "--mirror",
                              server.url, "--format", "json"], capsys)
        assert code == 0, err
        rows = {r["note"]: r for r in _json(out)["fetch"]}
        assert set(rows) == {"2m_temperature", "relative_humidity", "10m_u_component_of_wind",
                             "10m_v_component_of_wind", "total_cloud_cover", "temperature", "u_component_of_wind",
                             "v_component_of_wind"}
        assert rows["2m_temperature"]["bytes"] == 1234 and rows["temperature"]["bytes"] is None  # 404: unknown
        assert rows["relative_humidity"]["to"] == str(tmp_path / "r" / "weatherbench" / "raw" / "relative_humidity")
        code, out, err = cli(["download", "weatherbench", "--variables", "t2m,r", "--dry-run", "--root",
                              str(tmp_path / "r"), "--mirror", "http://127.0.0.1:1"], capsys)
        assert code == 0 and out.count("size unknown") == 2, err  # offline: listed, sizes unknown
        code, _, err = cli(["download", "weatherbench", "--variables", "sst", "--dry-run"], capsys)
        assert code == 2 and "sst" in err
    finally:
        server.close()
    assert not (tmp_path / "r").exists()  # a dry run writes nothing
