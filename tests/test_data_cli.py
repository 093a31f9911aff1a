"""CLI: `datasets list|info`, `prepare`, and one-line exit-3 messages for bad input files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from test_data_fixtures import cli, write_wb_year

from svqcast.data.catalog import CATALOG, PAPER_DATASETS
from svqcast.data.samples import sample_path

YEARS = ["--years", "train=2017:2017", "--years", "val=2018:2018", "--years", "test=2019:2019"]


def test_datasets_list_json(capsys):
    code, out, _ = cli(["datasets", "list", "--format", "json"], capsys)
    assert code == 0
    rows = json.loads(out)
    names = [r["name"] for r in rows]
    assert set(PAPER_DATASETS) <= set(names)
    assert {"era5-uk-t2m", "nyc-taxi", "nyc-bike", "kth-walking", "knmi-radar", "moving-mnist"} <= set(names)
    assert len(names) == len(CATALOG)


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_datasets_info_every_entry(name, capsys):
    code, out, _ = cli(["datasets", "info", name, "--format", "json"], capsys)
    assert code == 0
    d = json.loads(out)
    for key in ("variables", "units", "grid", "time_step_seconds", "t_in", "t_out", "splits", "source", "size",
                "citation", "licence"):
        assert d[key] not in (None, "", [], {}) or key == "time_step_seconds"
    assert len(d["idx_in"]) == d["t_in"] and len(d["idx_out"]) == d["t_out"]
    assert set(d["splits"]) == {"train", "val", "test"}
    code, out, _ = cli(["datasets", "info", name], capsys)
    assert code == 0 and "licence" in out and "citation" in out


def test_info_unknown_exit2(capsys):
    code, _, err = cli(["datasets", "info", "nope"], capsys)
    assert code == 2 and "unknown dataset 'nope'" in err


def test_prepare_cli_json_deterministic(tmp_path, capsys):
    code, out, err = cli(["prepare", "nyc-taxi", "--root", str(tmp_path / "a"), "--format", "json"], capsys)
    assert code == 0, err
    a = json.loads(out)
    code, out, _ = cli(["prepare", "nyc-taxi", "--root", str(tmp_path / "b"), "--format", "json"], capsys)
    b = json.loads(out)
    assert a["files"] == b["files"] and a["frames"] == {"train": 2784, "val": 672, "test": 864}


def test_prepare_not_downloaded_exit3(tmp_path, capsys):
    code, _, err = cli(["prepare", "taxibj", "--root", str(tmp_path)], capsys)
    assert code == 3 and "dataset.npz" in err and "svqcast download" in err


# ---- bad input files: one line naming file and problem, exit 3, nothing left behind ----

def _good_years(raw: Path) -> None:
    write_wb_year(raw, "2m_temperature", "t2m", 2017, "2017-01-01", 30)
    write_wb_year(raw, "2m_temperature", "t2m", 2018, "2018-01-01", 30, shift=2)
    write_wb_year(raw, "2m_temperature", "t2m", 2019, "2019-01-01", 30, shift=4)


def _bad_prepare(tmp_path: Path, capsys, expect: str, file_year: int) -> None:
    code, out, err = cli(["prepare", "weatherbench-s-t2m", "--root", str(tmp_path), *YEARS], capsys)
    assert code == 3, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert f"2m_temperature_{file_year}_5.625deg.nc" in lines[0] and expect in lines[0]
    assert "Traceback" not in err
    assert not (tmp_path / "weatherbench-s-t2m" / "prepared").exists()


def test_netcdf_missing_variable(tmp_path, capsys):
    raw = tmp_path / "weatherbench-s-t2m" / "raw"
    _good_years(raw)
    p = raw / "2m_temperature" / "2m_temperature_2017_5.625deg.nc"
    with xr.open_dataset(p) as ds:
        renamed = ds.rename({"t2m": "tcw"}).load()
    renamed.to_netcdf(p)
    _bad_prepare(tmp_path, capsys, "variable 't2m' not found (has: tcw)", 2017)


def test_netcdf_truncated(tmp_path, capsys):
    raw = tmp_path / "weatherbench-s-t2m" / "raw"
    _good_years(raw)
    p = raw / "2m_temperature" / "2m_temperature_2018_5.625deg.nc"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    _bad_prepare(tmp_path, capsys, "truncated", 2018)


def test_netcdf_nan_values(tmp_path, capsys):
    raw = tmp_path / "weatherbench-s-t2m" / "raw"
    _good_years(raw)
    p = raw / "2m_temperature" / "2m_temperature_2019_5.625deg.nc"
    with xr.open_dataset(p) as ds:
        bad = ds.load()
    bad["t2m"].values[3, 5, 7] = np.nan
    bad.to_netcdf(p)
    _bad_prepare(tmp_path, capsys, "1 NaN/inf values in 't2m' (first at index [3, 5, 7])", 2019)


def test_netcdf_grid_mismatch(tmp_path, capsys):
    raw = tmp_path / "weatherbench-s-t2m" / "raw"
    _good_years(raw)
    # a real ERA5 field on the wrong (UK 0.25 deg, the shipped 32x48 sample) grid in place of the 2017 file
    with xr.open_dataset(sample_path("era5_uk_t2m_2019-03.nc")) as ds:
        uk = ds.isel(time=slice(0, 30)).load()
    uk = uk.assign_coords(time=np.datetime64("2017-01-01", "ns") + np.arange(30) * np.timedelta64(1, "h"))
    uk.to_netcdf(raw / "2m_temperature" / "2m_temperature_2017_5.625deg.nc")
    _bad_prepare(tmp_path, capsys, "grid mismatch: 't2m' is 32x48, expected 32x64", 2017)


def test_netcdf_time_gap(tmp_path, capsys):
    raw = tmp_path / "weatherbench-s-t2m" / "raw"
    _good_years(raw)
    # 2017 train split from two files with a 5-hour hole between them
    write_wb_year(raw, "2m_temperature", "t2m", 2016, "2016-12-31T00", 19)
    code, _, err = cli(["prepare", "weatherbench-s-t2m", "--root", str(tmp_path), "--years", "train=2016:2017",
                        "--years", "val=2018:2018", "--years", "test=2019:2019"], capsys)
    assert code == 3 and "time axis is not regular" in err and "2016-12-31T18" in err
