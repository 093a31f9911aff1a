"""The data -> training contract (docs/architecture.md) on the embedded real samples."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
import xarray as xr

from svqcast.data import DataSpec, get_split_dataset
from svqcast.data.samples import sample_path


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("svqdata")


def test_era5_uk_t2m_splits_shapes_and_normalisation(root):
    train = get_split_dataset("era5-uk-t2m", "train", root=root)
    val = get_split_dataset("era5-uk-t2m", "val", root=root)
    test = get_split_dataset("era5-uk-t2m", "test", root=root)
    # 1-23 March = 552 h, 24-26 = 72 h, 27-31 = 120 h; every complete 24-h window: n - 23.
    assert (len(train), len(val), len(test)) == (552 - 23, 72 - 23, 120 - 23)
    x, y = train[0]
    assert x.shape == (12, 1, 32, 48) and y.shape == (12, 1, 32, 48)
    assert x.dtype == torch.float32 and y.dtype == torch.float32

    # Oracle: the shipped sample decoded independently with xarray, float64 statistics of
    # 1-23 March only; every split is z-scored with these TRAINING statistics.
    raw = xr.open_dataset(sample_path("era5_uk_t2m_2019-03.nc"))["t2m"].astype("float64")
    tr = raw.sel(time=slice("2019-03-01", "2019-03-23")).values
    mean, std = tr.mean(), tr.std()
    assert train.spec.mean[0] == pytest.approx(mean, rel=1e-7)  # store is float32
    assert train.spec.std[0] == pytest.approx(std, rel=1e-6)
    assert test.spec.mean == train.spec.mean and val.spec.std == train.spec.std

    te = raw.sel(time=slice("2019-03-27", "2019-03-31"))
    k = 5
    want_x = (te.values[k:k + 12] - mean) / std
    want_y = (te.values[k + 12:k + 24] - mean) / std
    tx, ty = test[k]
    np.testing.assert_allclose(tx[:, 0].numpy(), want_x, atol=2e-5)
    np.testing.assert_allclose(ty[:, 0].numpy(), want_y, atol=2e-5)
    ti, to = test.times(k)
    assert ti.dtype == np.dtype("datetime64[ns]")
    np.testing.assert_array_equal(ti, te["time"].values[k:k + 12])
    np.testing.assert_array_equal(to, te["time"].values[k + 12:k + 24])
    # last sample ends exactly at the last hour of March
    assert test.times(len(test) - 1)[1][-1] == np.datetime64("2019-03-31T23:00", "ns")


def test_spec_roundtrip_json(root):
    ds = get_split_dataset("era5-uk-t2m", "val", root=root)
    d = json.loads(json.dumps(ds.spec.to_dict()))
    spec = DataSpec.from_dict(d)
    assert spec == ds.spec
    assert d["dims"] == ["lat", "lon"] and len(d["coords"]["lat"]) == 32 and len(d["coords"]["lon"]) == 48
    assert d["coords"]["lat"][0] == 58.0 and d["coords"]["lon"][-1] == 1.75
    assert d["units"] == ["K"] and d["time_step_seconds"] == 3600.0 and d["clip_range"] is None
    assert d["idx_in"] == list(range(-11, 1)) and d["idx_out"] == list(range(1, 13))
    with pytest.raises(Exception, match="missing"):
        DataSpec.from_dict({k: v for k, v in d.items() if k != "mean"})


def test_nyc_taxi_contract(root):
    raw = np.load(sample_path("nyc_taxi_flow_2016.npz"))["flow"].astype(np.float64)
    train = get_split_dataset("nyc-taxi", "train", root=root)
    test = get_split_dataset("nyc-taxi", "test", root=root)
    assert len(train) == 2784 - 7 and len(test) == 864 - 7
    mean = raw[:2784].mean(axis=(0, 2, 3))
    std = raw[:2784].std(axis=(0, 2, 3))
    np.testing.assert_allclose(train.spec.mean, mean, rtol=1e-9)
    np.testing.assert_allclose(test.spec.std, std, rtol=1e-9)
    x, y = test[10]
    assert x.shape == (4, 2, 16, 12) and y.shape == (4, 2, 16, 12)
    base = 2784 + 672 + 10
    want = (raw[base:base + 4] - mean[None, :, None, None]) / std[None, :, None, None]
    np.testing.assert_allclose(x.numpy(), want, atol=1e-5)
    ti, to = test.times(10)
    assert to[0] - ti[-1] == np.timedelta64(30, "m")
    assert train.spec.channel_names == ["inflow", "outflow"] and train.spec.dims == ["y", "x"]


def test_official_validation_val_is_test(root):
    val = get_split_dataset("era5-uk-t2m", "val", root=root, official_validation=True)
    test = get_split_dataset("era5-uk-t2m", "test", root=root)
    assert len(val) == len(test)
    torch.testing.assert_close(val[3][0], test[3][0])
    assert val.spec.split_source == "official"


def test_picklable_and_dataloader_workers(root):
    ds = get_split_dataset("nyc-taxi", "val", root=root)
    ds[0]  # open the memmap in this process first: pickling must still work
    clone = pickle.loads(pickle.dumps(ds))
    torch.testing.assert_close(clone[7][1], ds[7][1])
    loader = torch.utils.data.DataLoader(ds, batch_size=64, num_workers=2, shuffle=False)
    xb, yb = next(iter(loader))
    assert xb.shape == (64, 4, 2, 16, 12)
    torch.testing.assert_close(xb[63], ds[63][0])


def test_custom_lengths_and_errors(root):
    ds = get_split_dataset("era5-uk-t2m", "test", root=root, t_in=6, t_out=3)
    x, y = ds[0]
    assert x.shape[0] == 6 and y.shape[0] == 3 and len(ds) == 120 - 8
    from svqcast.errors import DataError, UsageError

    with pytest.raises(UsageError):
        get_split_dataset("era5-uk-t2m", "dev", root=root)
    with pytest.raises(UsageError):
        get_split_dataset("no-such-data", "train", root=root)
    with pytest.raises(UsageError, match="non-uniform"):
        get_split_dataset("weatherbench-m", "train", root=root, t_in=2)
    with pytest.raises(DataError, match="svqcast download weatherbench-s-t2m"):
        get_split_dataset("weatherbench-s-t2m", "train", root=root)


def test_stale_embedded_store_is_rebuilt(tmp_path):
    import json

    ds = get_split_dataset("nyc-bike", "test", root=tmp_path)
    man = tmp_path / "nyc-bike" / "prepared" / "manifest.json"
    m = json.loads(man.read_text())
    m["sources"]["nyc_bike_flow_2016.npz"] = "0" * 64  # as if prepared from an older shipped file
    man.write_text(json.dumps(m))
    again = get_split_dataset("nyc-bike", "test", root=tmp_path)
    assert json.loads(man.read_text())["sources"]["nyc_bike_flow_2016.npz"] != "0" * 64
    torch.testing.assert_close(again[5][0], ds[5][0])


def test_concurrent_first_use_prepares_once(tmp_path):
    """Several processes (e.g. DDP ranks) asking for an unprepared sample at once all succeed."""
    import subprocess
    import sys

    code = ("import sys; from svqcast.data import get_split_dataset; "
            "print(len(get_split_dataset('nyc-bike', 'val', root=sys.argv[1])))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1][-500:] for o in outs]
    assert [o[0].strip() for o in outs] == ["665"] * 3
    assert sorted(p.name for p in (tmp_path / "nyc-bike").iterdir()) == ["prepared"]


def test_spec_from_dict_forward_compatible_and_validated(root):
    d = get_split_dataset("nyc-taxi", "test", root=root).spec.to_dict()
    d["field_from_a_newer_svqcast"] = 1
    assert DataSpec.from_dict(d).channel_names == ["inflow", "outflow"]
    from svqcast.errors import DataError

    bad = dict(d, std=[1.0])
    with pytest.raises(DataError, match="std has 1 entries for 2 channels"):
        DataSpec.from_dict(bad)
    with pytest.raises(DataError, match="std must be positive"):
        DataSpec.from_dict(dict(d, std=[1.0, 0.0]))
