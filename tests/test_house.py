"""Regression tests for the defects that two copies of one corridor produced (one way through the
house): plot and score read forecasts through one view and score through one code path, and every
reading command classifies inputs with one suffix table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from _cli import run_cli

from svqcast.data.samples import SAMPLES_DIR

SAMPLE = SAMPLES_DIR / "era5_uk_t2m_2019-03.nc"
LAYOUTS = ("cf", "wb2", "valid-time")


@pytest.fixture(scope="module")
def layout_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The bundled model's 6 h forecast from the held-out week, in every layout predict writes."""
    from svqcast.cli import main

    out = tmp_path_factory.mktemp("layouts")
    files = {}
    for layout in LAYOUTS:
        files[layout] = out / f"fc_{layout}.nc"
        try:
            main.run(["predict", str(SAMPLE), "-o", str(files[layout]), "--init-time", "2019-03-29T00:00",
                      "--lead-time", "6h", "--layout", layout, "--format", "json"])
        except SystemExit as exc:
            assert not exc.code, f"predict --layout {layout} failed"
    return files


def _plot_scores(path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> list[dict]:
    code, out, err = run_cli(["plot", path, "--truth", SAMPLE, "-o", tmp_path / f"{path.stem}.png",
                              "--format", "json", "--overwrite"], capsys)
    assert code == 0, err
    return json.loads(out)["scores"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_plot_draws_every_layout_that_predict_writes(layout: str, layout_files: dict[str, Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    scores = _plot_scores(layout_files[layout], tmp_path, capsys)
    assert [s["lead_time"] for s in scores] == [f"{h}h" for h in range(1, 7)]
    for mine, cf in zip(scores, _plot_scores(layout_files["cf"], tmp_path, capsys), strict=True):
        for key in ("rmse", "mae", "bias"):  # one view: the layout changes nothing beyond summation order
            assert mine[key] == pytest.approx(cf[key], rel=1e-12, abs=1e-12)
    with Image.open(tmp_path / f"{layout_files[layout].stem}.png") as im:
        assert im.format == "PNG" and im.size[0] > 300


def test_plot_scores_equal_the_score_command(layout_files: dict[str, Path], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    scores = _plot_scores(layout_files["wb2"], tmp_path, capsys)
    code, out, err = run_cli(["score", layout_files["wb2"], "--truth", SAMPLE, "--format", "json"], capsys)
    assert code == 0, err
    rows = json.loads(out)["variables"]["2m_temperature"]["per_lead"]
    for mine, theirs in zip(scores, rows, strict=True):
        for key in ("rmse", "mae", "bias"):
            assert mine[key] == pytest.approx(theirs[key], rel=1e-12, abs=1e-12)


def _global_pair(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    """A forecast on a grid whose rows touch the poles (cos(lat) = 0 there, cell areas are not),
    its truth, and the forecast - truth error (constant per latitude row)."""
    lat = np.array([-90.0, -45.0, 0.0, 45.0, 90.0])
    lon = np.arange(0.0, 360.0, 60.0)
    times = pd.date_range("2020-01-01", periods=4, freq="h").values
    rng = np.random.default_rng(3)
    truth = 280.0 + rng.normal(size=(4, lat.size, lon.size))
    err_row = np.array([3.0, 0.5, -0.2, 0.7, -4.0])
    leads = np.array([1, 2], dtype="timedelta64[h]").astype("timedelta64[ns]")
    fc = truth[1:3][None] + err_row[None, None, :, None]  # init 00 UTC, leads 1 h and 2 h
    t_attrs = {"units": "K", "standard_name": "air_temperature"}
    xr.Dataset({"t2m": (("time", "lat", "lon"), truth, t_attrs)},
               coords={"time": times, "lat": lat, "lon": lon}).to_netcdf(tmp_path / "truth.nc")
    xr.Dataset({"t2m": (("time", "lead_time", "lat", "lon"), fc, t_attrs)},
               coords={"time": times[:1], "lead_time": leads, "lat": lat, "lon": lon}).to_netcdf(tmp_path / "fc.nc")
    return tmp_path / "fc.nc", tmp_path / "truth.nc", np.broadcast_to(err_row[:, None], (lat.size, lon.size))


def test_plot_and_score_weight_cells_by_area_even_at_the_poles(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Float64 oracle: band areas sin(upper) - sin(lower) with bounds at the midpoints, clipped at
    +-90. The plot used cos(lat) once: zero weight at the poles, a different RMSE."""
    fc, truth, err = _global_pair(tmp_path)
    lat = np.array([-90.0, -45.0, 0.0, 45.0, 90.0])
    bounds = np.clip(np.concatenate([[-112.5], (lat[1:] + lat[:-1]) / 2, [112.5]]), -90, 90)
    area = np.sin(np.deg2rad(bounds[1:])) - np.sin(np.deg2rad(bounds[:-1]))
    w = np.broadcast_to(area[:, None], err.shape)
    rmse = float(np.sqrt((w * err**2).sum() / w.sum()))
    cos_w = np.broadcast_to(np.cos(np.deg2rad(lat))[:, None], err.shape)
    assert abs(rmse - np.sqrt((cos_w * err**2).sum() / cos_w.sum())) > 0.1  # the two rules differ here
    code, out, errtext = run_cli(["plot", fc, "--truth", truth, "-o", tmp_path / "f.png", "--format", "json"], capsys)
    assert code == 0, errtext
    plotted = json.loads(out)["scores"]
    code, out, errtext = run_cli(["score", fc, "--truth", truth, "--format", "json"], capsys)
    assert code == 0, errtext
    scored = json.loads(out)["variables"]["t2m"]["per_lead"]
    for p, s in zip(plotted, scored, strict=True):
        assert p["rmse"] == pytest.approx(rmse, rel=1e-12) and s["rmse"] == pytest.approx(rmse, rel=1e-12)
        assert p["bias"] == pytest.approx(float((w * err).sum() / w.sum()), rel=1e-12)


def test_prepare_and_predict_accept_the_same_suffixes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Both commands classify through svqcast.sources.formats.SUFFIXES: every suffix in the table
    reaches its reader (a broken file is a data error, exit 3) and one outside it is refused alike."""
    from svqcast.sources.formats import SUFFIXES, accepted_suffixes

    assert ".hdf5" in SUFFIXES["netcdf"] and len(set(accepted_suffixes())) == len(accepted_suffixes())
    for suffix in [*accepted_suffixes(), ".xyz"]:
        path = tmp_path / f"broken{suffix}"
        path.write_bytes(b"not data")
        prep = run_cli(["prepare", path, "--name", "x", "--root", tmp_path / "root"], capsys)
        pred = run_cli(["predict", path, "-o", tmp_path / "o.nc"], capsys)
        expected = 2 if suffix == ".xyz" else 3
        assert prep[0] == pred[0] == expected, (suffix, prep[2], pred[2])
        assert ("unsupported format" in prep[2]) == ("unsupported format" in pred[2]) == (suffix == ".xyz")
    assert not (tmp_path / "o.nc").exists() and not (tmp_path / "root" / "x").exists()


def test_an_empty_npy_is_a_data_error_not_an_interruption(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty.npy").write_bytes(b"")
    code, _, err = run_cli(["prepare", tmp_path / "empty.npy", "--name", "e", "--root", tmp_path / "root"], capsys)
    assert code == 3 and "not a readable .npy" in err and "SIGINT" not in err


def _renamed_sample(tmp_path: Path) -> Path:
    """The ERA5 sample with coordinate names and attributes the guesser cannot recognise."""
    ds = xr.open_dataset(SAMPLE).rename({"time": "tm", "lat": "north", "lon": "east"})
    for name in ("north", "east"):
        ds[name].attrs = {}
    path = tmp_path / "odd_names.nc"
    ds.to_netcdf(path)
    return path


def test_coords_names_what_the_guesser_misses_on_every_reading_command(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    odd = _renamed_sample(tmp_path)
    base = ["--init-time", "2019-03-29T00:00", "--lead-time", "3h", "--format", "json"]
    code, _, err = run_cli(["predict", odd, "-o", tmp_path / "a.nc", *base], capsys)
    assert code == 3 and not (tmp_path / "a.nc").exists()
    coords = ["--coords", "time=tm,lat=north", "--coords", "lon=east"]
    assert run_cli(["predict", odd, "-o", tmp_path / "a.nc", *base, *coords], capsys)[0] == 0
    assert run_cli(["predict", SAMPLE, "-o", tmp_path / "b.nc", *base], capsys)[0] == 0
    with xr.open_dataset(tmp_path / "a.nc") as a, xr.open_dataset(tmp_path / "b.nc") as b:
        np.testing.assert_array_equal(a["t2m"].values, b["t2m"].values)
    code, out, err = run_cli(["score", tmp_path / "b.nc", "--truth", odd, "--format", "json", *coords], capsys)
    assert code == 0, err
    assert json.loads(out)["variables"]["t2m"]["overall"]["rmse"] > 0
    code, _, err = run_cli(["plot", tmp_path / "b.nc", "--truth", odd, "-o", tmp_path / "p.png", *coords], capsys)
    assert code == 0, err
    code, _, err = run_cli(["prepare", odd, "--name", "odd", "--root", tmp_path / "root", *coords], capsys)
    assert code == 0, err


@pytest.mark.parametrize("value, code, words", [("height=z", 2, "ROLE=NAME"), ("lat", 2, "ROLE=NAME"),
                                                ("lat=nowhere", 3, "no such coordinate")])
def test_bad_coords_are_one_line_and_leave_nothing(value: str, code: int, words: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    got, _, err = run_cli(["predict", SAMPLE, "-o", tmp_path / "a.nc", "--coords", value], capsys)
    assert got == code and words in err and "--coords" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "a.nc").exists()


def test_the_vocabulary_is_one_table() -> None:
    from svqcast.forecast import writer
    from svqcast.sources import lexicon

    assert all(term.wb2 in term.aliases for term in lexicon.VOCABULARY.values())  # WB2 files resolve
    assert not hasattr(writer, "CF_NAMES") or writer.CF_NAMES is lexicon.CF_NAMES
    assert lexicon.ALIASES["t2m"][:3] == ("t2m", "2t", "2m_temperature")


def test_tables_never_cut_names_at_80_columns(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from svqcast.config import list_presets
    from svqcast.zoo.registry import load_registry

    monkeypatch.setenv("COLUMNS", "80")
    for argv, names in ((["models", "presets"], list_presets()), (["models", "list"], list(load_registry()))):
        code, out, err = run_cli(argv, capsys)
        assert code == 0, err
        assert "…" not in out and all(name in out.split() for name in names), argv


def test_evaluate_tables_never_cut_at_80_columns(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = run_cli(["evaluate", "nyc-taxi_gsta_svq", "--per-lead-time", "--max-batches", "1"], capsys)
    assert code == 0, err
    assert "…" not in out and "same_time_last_week" in out.replace("\n", "")


def test_one_name_per_concept_and_every_format_in_help(capsys: pytest.CaptureFixture[str]) -> None:

    for command in (["predict"], ["score"], ["plot"], ["prepare"], ["evaluate"], ["train"], ["download"]):
        code, out, _ = run_cli([*command, "--help"], capsys)
        assert code == 0 and "--format" in out, command  # every report takes --format
    for command in (["score"], ["plot"], ["prepare"], ["download"]):
        code, out, _ = run_cli([*command, "--help"], capsys)
        assert "--variables" in out and "--var " not in out, command
    for command in (["predict"], ["score"], ["plot"]):
        code, out, _ = run_cli([*command, "--help"], capsys)
        flat = "".join(out.split())
        assert all(suffix in flat for suffix in (".hdf5", ".grib2", ".npy", ".mp4")), command
    code, out, _ = run_cli(["predict", "--help"], capsys)
    assert "train.compile" not in out and "when training" not in out
    from svqcast.cli.output import plural

    assert plural(1, "sample") == "1 sample" and plural(3, "sample") == "3 samples"
