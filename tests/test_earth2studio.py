"""The earth2studio adapter: any svqcast forecaster as an earth2studio prognostic model.

With earth2studio installed (`pip install 'svqcast[earth2studio]'`), its own deterministic
workflow runs the bundled model from an in-memory data source built from the embedded sample,
and the result equals `svqcast predict` to float rounding. Without it, that test is skipped
with the reason, and the protocol's shapes and coordinates are still checked.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

import svqcast
from svqcast.data.samples import SAMPLES_DIR
from svqcast.forecast.e2s_adapter import Prognostic, e2s_names

SAMPLE = SAMPLES_DIR / "era5_uk_t2m_2019-03.nc"
INIT = np.datetime64("2019-03-29T00:00", "ns")


@pytest.fixture(scope="module")
def model() -> Prognostic:
    return Prognostic(svqcast.load_model("era5-uk-t2m_gsta_svq"))


def test_protocol_shapes_and_one_step(model: Prognostic) -> None:
    ic = model.input_coords()
    assert list(ic) == ["batch", "time", "lead_time", "variable", "lat", "lon"]
    assert ic["lead_time"].size == 25 and ic["lead_time"][-1] == np.timedelta64(0, "ns")
    assert list(ic["variable"]) == ["t2m"]
    oc = model.output_coords(ic)
    assert oc["lead_time"].tolist() == [np.timedelta64(1, "h").astype("timedelta64[ns]")]
    with xr.open_dataset(SAMPLE) as ds:
        past = ds["t2m"].sel(time=slice(INIT - np.timedelta64(24, "h"), INIT)).values
    x = torch.from_numpy(past[None, None, :, None].astype(np.float32))  # (time, batch?, lead, var, lat, lon)
    y, coords = model(x, ic)
    assert tuple(y.shape) == (1, 1, 1, 1, 32, 48) and coords["lead_time"].size == 1
    steps = model.create_iterator(x, ic)
    first, c0 = next(steps)
    assert torch.equal(first, x[..., -1:, :, :, :]) and c0["lead_time"][0] == np.timedelta64(0, "ns")
    second, _ = next(steps)
    torch.testing.assert_close(second, y)
    with pytest.raises(ValueError, match="variable"):
        model.output_coords({**ic, "variable": np.array(["u10m"])})
    assert e2s_names(svqcast.load_model("era5-uk-t2m_gsta_svq").spec) == ["t2m"]


def test_earth2studio_deterministic_workflow_equals_predict(model: Prognostic, tmp_path) -> None:
    e2s = pytest.importorskip("earth2studio", reason="earth2studio is not installed: pip install "
                                                     "'svqcast[earth2studio]' to run its workflow here")
    from earth2studio.data import DataArrayFile
    from earth2studio.io import XarrayBackend
    from earth2studio.run import deterministic

    with xr.open_dataset(SAMPLE) as ds:
        da = ds["t2m"].load().expand_dims(variable=["t2m"], axis=1)
    da.to_netcdf(tmp_path / "source.nc")
    io = deterministic([INIT], 24, model, DataArrayFile(str(tmp_path / "source.nc")), XarrayBackend(),
                       device=torch.device("cpu"), verbose=False)
    got = io.root["t2m"].values[0, 1:]  # leads +1..+24 h (lead 0 is the initial condition)
    want = svqcast.load_model("era5-uk-t2m_gsta_svq").predict(SAMPLE, init_time=str(INIT)[:16], steps=24)
    np.testing.assert_allclose(got, want["t2m"].values[0], atol=1e-4)
    assert e2s.__version__
