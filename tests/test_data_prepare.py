"""Preparation: deterministic bytes, statistics from the training split only, manifests,
the official-validation store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from test_data_fixtures import write_wb_year

from svqcast.data import get_split_dataset
from svqcast.data.prepare import prepare
from svqcast.data.store import open_split
from svqcast.data.storedir import verify
from svqcast.errors import DataError
from tests._stores import data_chunks

SEL = {"years": {"train": [2016, 2017], "val": [2018, 2018], "test": [2019, 2019]}}


def _wb_raw(root: Path, test_offset: float = 0.0) -> Path:
    raw = root / "weatherbench-s-t2m" / "raw"
    write_wb_year(raw, "2m_temperature", "t2m", 2016, "2016-12-31T00", 24)
    write_wb_year(raw, "2m_temperature", "t2m", 2017, "2017-01-01T00", 30, shift=24)
    write_wb_year(raw, "2m_temperature", "t2m", 2018, "2018-01-01T00", 30, shift=3)
    p = write_wb_year(raw, "2m_temperature", "t2m", 2019, "2019-01-01T00", 30, shift=7)
    if test_offset:
        with xr.open_dataset(p) as ds:
            changed = (ds + test_offset).load()
        changed.to_netcdf(p)
    return raw


def _manifest(d: Path) -> dict:
    return json.loads((d / "manifest.json").read_text())


def test_prepare_twice_gives_identical_bytes(tmp_path):
    a = prepare("era5-uk-t2m", tmp_path / "a")
    b = prepare("era5-uk-t2m", tmp_path / "b")
    ma, mb = _manifest(a), _manifest(b)
    assert ma["files"] == mb["files"]
    top = {f for f in ma["files"] if "/" not in f}
    assert top == {"stats.json"} and "store.zarr/zarr.json" in ma["files"]
    assert any(f.startswith("store.zarr/data/c/") for f in ma["files"])
    for name in ma["files"]:
        assert (a / name).read_bytes() == (b / name).read_bytes()
    verify(a)
    # forced re-preparation in place is also byte-identical
    prepare("era5-uk-t2m", tmp_path / "a", force=True)
    assert _manifest(a)["files"] == mb["files"]


def test_weatherbench_prepare_deterministic_and_stats_from_train_only(tmp_path):
    _wb_raw(tmp_path / "a")
    _wb_raw(tmp_path / "b", test_offset=100.0)  # the test year differs wildly, train/val identical
    da = prepare("weatherbench-s-t2m", tmp_path / "a", select=SEL)
    db = prepare("weatherbench-s-t2m", tmp_path / "b", select=SEL)
    fa, fb = _manifest(da)["files"], _manifest(db)["files"]
    for split in ("train", "val"):
        with open_split(da, split) as a, open_split(db, split) as b:
            assert np.array_equal(a["data"].values, b["data"].values)
    with open_split(da, "test") as a, open_split(db, "test") as b:
        assert not np.array_equal(a["data"].values, b["data"].values)
    assert fa["stats.json"] == fb["stats.json"]  # test data does not move the statistics
    # the statistics are the float64 mean/std of exactly the training years' values
    raw = tmp_path / "a" / "weatherbench-s-t2m" / "raw" / "2m_temperature"
    train = np.concatenate([xr.open_dataset(raw / f"2m_temperature_{y}_5.625deg.nc")["t2m"].values
                            for y in (2016, 2017)]).astype(np.float64)
    stats = json.loads((da / "stats.json").read_text())
    assert stats["mean"][0] == pytest.approx(train.mean(), rel=1e-12)
    assert stats["std"][0] == pytest.approx(train.std(), rel=1e-12)
    assert stats["count_per_channel"] == train.size
    # the test split is normalised with those training statistics
    te_a = get_split_dataset("weatherbench-s-t2m", "test", root=tmp_path / "a")
    te_b = get_split_dataset("weatherbench-s-t2m", "test", root=tmp_path / "b")
    assert te_a.spec.mean == te_b.spec.mean
    np.testing.assert_allclose((te_b[0][0] - te_a[0][0]).numpy(), 100.0 / stats["std"][0], rtol=1e-4)
    # manifest records the selection used
    assert _manifest(da)["select"] == SEL


def test_verify_detects_corruption(tmp_path):
    d = prepare("nyc-bike", tmp_path)
    p = data_chunks(d)[-1]  # the last chunk: test frames
    data = bytearray(p.read_bytes())
    data[-10] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(DataError, match=f"{p.relative_to(d)}: sha256 does not match"):
        verify(d)


def test_official_validation_store(tmp_path):
    _wb_raw(tmp_path)
    sel = {"years": {"train": [2016, 2017], "val": [2019, 2019], "test": [2019, 2019]}}
    d = prepare("weatherbench-s-t2m", tmp_path, official_validation=True, select=sel)
    assert d.name == "prepared-official"
    m = _manifest(d)
    assert m["official_validation"] is True and m["splits"] == ["train", "test"]
    val = get_split_dataset("weatherbench-s-t2m", "val", root=tmp_path, official_validation=True)
    test = get_split_dataset("weatherbench-s-t2m", "test", root=tmp_path, official_validation=True)
    assert len(val) == len(test) == 30 - 23
    assert val.path == test.path


def test_store_opens_with_plain_xarray(tmp_path):
    d = prepare("era5-uk-t2m", tmp_path)
    with open_split(d, "test") as ds:
        assert ds["data"].dims == ("time", "channel", "lat", "lon")
        assert ds["lat"].attrs["units"] == "degrees_north" and str(ds["units"].values[0]) == "K"
        assert ds["time"].values[0] == np.datetime64("2019-03-27T00:00", "ns")
        assert ds.sizes["time"] == 120


def test_moving_mnist_is_deterministic(tmp_path):
    from svqcast.data import builders
    from svqcast.data.catalog import get_entry

    e = get_entry("moving-mnist")
    a = builders.moving_mnist(e, e.select, tmp_path, False).splits["test"].frames
    b = builders.moving_mnist(e, e.select, tmp_path, False).splits["test"].frames
    assert a.shape == (100 * 20, 1, 64, 64) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert a.max() == 255 and (a > 0).mean() < 0.5  # two digits on a dark background
