"""The public API is one plain `svqcast.__all__`: every name in it imports, `dir()` lists
it, importing the package stays cheap, and module names never shadow API functions."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest

import svqcast


@pytest.mark.parametrize("name", svqcast.__all__)
def test_every_name_in_all_imports(name: str) -> None:
    value = getattr(svqcast, name)
    assert value is not None
    # `from svqcast import NAME` in a fresh namespace resolves to the same object
    ns: dict = {}
    exec(f"from svqcast import {name} as obj", ns)
    assert ns["obj"] is value


def test_dir_lists_the_public_api() -> None:
    assert set(svqcast.__all__) <= set(dir(svqcast))
    assert len(svqcast.__all__) == len(set(svqcast.__all__))


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        svqcast.nope  # noqa: B018


def test_functions_stay_functions_after_their_modules_are_imported() -> None:
    """`svqcast.train` / `svqcast.evaluate` are the API functions, not modules: the
    implementation modules are svqcast.training and svqcast.verify.evaluation."""
    importlib.import_module("svqcast.training.loop")
    importlib.import_module("svqcast.verify.evaluation")
    for name in ("train", "evaluate", "predict", "load_model", "build_model"):
        assert inspect.isfunction(getattr(svqcast, name)), name
    assert not hasattr(svqcast, "_CallableModule")


def test_quantizers_are_layers() -> None:
    import torch

    for name in ("SVQ", "SVQRaw"):
        cls = getattr(svqcast, name)
        assert issubclass(cls, svqcast.Quantizer) and issubclass(cls, torch.nn.Module)


def test_import_is_cheap() -> None:
    code = "import sys, svqcast; print('torch' in sys.modules, 'xarray' in sys.modules, len(dir(svqcast)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    torch_loaded, xarray_loaded, n = out.stdout.split()
    assert (torch_loaded, xarray_loaded) == ("False", "False")
    assert int(n) == len(svqcast.__all__)


def test_predict_is_load_model_then_predict(tmp_path) -> None:
    """`svqcast.predict` is real (it used to raise AttributeError)."""
    from _predict_fixtures import make_tiny_checkpoint, open_sample

    ckpt = make_tiny_checkpoint(tmp_path / "tiny")
    ds = open_sample().sel(time=slice("2019-03-28T00", "2019-03-29T00"))
    a = svqcast.predict(ckpt, ds, steps=2)
    b = svqcast.load_model(ckpt).predict(ds, steps=2)
    assert a["t2m"].shape == b["t2m"].shape and bool((a["t2m"] == b["t2m"]).all())


def test_forecaster_takes_a_dataspec_only(tmp_path) -> None:
    from _predict_fixtures import era5_spec, open_sample

    from svqcast.errors import UsageError

    spec = era5_spec(open_sample())
    net = svqcast.build_model({"extends": "_defaults", "model": {
        "in_shape": [12, 1, 32, 48], "hid_S": 4, "hid_T": 8, "N_S": 2, "N_T": 2,
        "translator": "gsta", "quantizer": "none", "mlp_ratio": 2.0}})
    assert svqcast.Forecaster(net, spec).t_out == 12
    with pytest.raises(UsageError, match="DataSpec"):
        svqcast.Forecaster(net, spec.to_dict())  # type: ignore[arg-type]
