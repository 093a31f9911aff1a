"""The fast paths: bf16 autocast, channels_last, torch.compile, batched predict, gpu_check
on a machine without CUDA (small shapes; no timing asserts)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from _train_standins import SyntheticWindows, TinyNet, one_thread, tiny_cfg

from svqcast.config import load_config
from svqcast.errors import UsageError
from svqcast.models import fastpath as FP
from svqcast.models.factory import build_model_from_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


def small(translator: str = "gsta", **extra: object) -> torch.nn.Module:
    cfg = load_config("_defaults")
    cfg["model"].update(in_shape=[4, 2, 16, 16], out_frames=4, hid_S=8, hid_T=16, N_S=2, N_T=2,
                        translator=translator, quantizer="svq", codebook_size=64, middim=16, **extra)
    torch.manual_seed(0)
    return build_model_from_config(cfg)


def test_precision_names_and_autocast() -> None:
    assert FP.check_precision("fp32") == "32" and FP.check_precision("bf16-mixed") == "bf16"
    with pytest.raises(UsageError, match="one of 32, bf16"):
        FP.check_precision("fp8")
    lin = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    with FP.autocast_context("cpu", "32"):
        assert torch.equal(lin(x), lin(x)) and lin(x).dtype == torch.float32
    with FP.autocast_context("cpu", "bf16"):
        y = lin(x)
    assert y.dtype == torch.bfloat16
    assert lin.weight.dtype == torch.float32  # master weights stay fp32


def test_channels_last_choice() -> None:
    model = small("gsta")
    assert FP.use_channels_last(model, "32", "auto", "cpu") is False  # fp32 default stays exact
    assert FP.use_channels_last(model, "32", "on", "cpu") and FP.use_channels_last(model, "bf16", True, "cpu")
    assert not FP.use_channels_last(model, "bf16", "off", "cpu")
    native = FP.native_bf16("cpu")
    assert FP.use_channels_last(model, "bf16", "auto", "cpu") == ("gsta" in FP.CHANNELS_LAST_WINS[("bf16", native)])
    with pytest.raises(UsageError, match="auto, on, off"):
        FP.use_channels_last(model, "32", "sideways", "cpu")


def test_prepare_model_changes_layout_not_values() -> None:
    model = small("gsta").eval()
    x = torch.randn(2, 4, 2, 16, 16)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        ref = model(x)
    FP.prepare_model(model, "32", "on", "cpu")
    conv = model.enc.enc[0].conv.conv.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]) and v.dtype == before[k].dtype, k
    with torch.no_grad():
        got = model(x)
    assert torch.allclose(got, ref, rtol=1e-4, atol=1e-5)


def test_bf16_on_hardware_without_bf16_warns(monkeypatch) -> None:
    monkeypatch.setattr(FP, "native_bf16", lambda device: False)
    with pytest.warns(RuntimeWarning, match="no native bf16"):
        FP.prepare_model(small("gsta"), "bf16", "off", "cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        FP.prepare_model(small("gsta"), "32", "off", "cpu")


def test_bf16_forward_backward_gives_fp32_grads_close_to_fp32() -> None:
    model = small("vit")
    x, y = torch.randn(2, 4, 2, 16, 16), torch.randn(2, 4, 2, 16, 16)
    grads = {}
    for prec in ("32", "bf16"):
        model.zero_grad(set_to_none=True)
        with FP.autocast_context("cpu", prec):
            out = model(x, return_aux=True)
        loss = (out.pred.float() - y).abs().mean() + out.aux_loss.float()
        assert loss.dtype == torch.float32
        loss.backward()
        grads[prec] = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    assert grads["bf16"].dtype == torch.float32
    cos = torch.nn.functional.cosine_similarity(grads["bf16"], grads["32"], dim=0)
    assert float(cos) > 0.98


def test_compile_wrapper_keeps_outputs_and_state_keys() -> None:
    model = small("swin").eval()
    assert FP.compile_model(model, False) is model
    compiled = torch.compile(model, backend="eager")  # the real wrapper, without inductor's C++ build
    x = torch.randn(1, 4, 2, 16, 16)
    with torch.no_grad():
        assert torch.allclose(compiled(x), model(x), atol=1e-6)
        assert torch.allclose(compiled(x, return_aux=True).pred, model(x), atol=1e-6)


def _loop_data():
    return SyntheticWindows(12), SyntheticWindows(5, offset=100)


def test_training_loop_with_channels_last_and_compile(tmp_path, monkeypatch) -> None:
    """train.compile=true compiles the net the loop calls (eager backend here: bit-identical
    losses) and checkpoints keep plain keys; train.channels_last=on changes strides only:
    the first validation loss agrees to float noise (training losses differ slightly
    because dropout draws its mask in memory order)."""
    import svqcast.training.loop as loop
    import svqcast.training.trainer as trainer
    from svqcast.training.runlog import read_metrics

    calls = []

    def eager_compile(net, enabled):
        calls.append(enabled)
        return torch.compile(net, backend="eager") if enabled else net

    monkeypatch.setattr(trainer, "compile_model", eager_compile)
    rows = {}
    for name, extra in (("plain", {}), ("compiled", {"compile": True}), ("cl", {"channels_last": "on"})):
        run = loop.train(tiny_cfg(epochs=2, **extra), run_dir=tmp_path / name, datasets=_loop_data(),
                         model_fn=TinyNet, progress="none")
        rows[name] = read_metrics(run)
    assert calls == [False, True, False]
    for a, b in zip(rows["plain"], rows["compiled"], strict=True):
        assert (a["train_loss"], a["val_loss"]) == (b["train_loss"], b["val_loss"])
    assert rows["cl"][0]["val_loss"] == pytest.approx(rows["plain"][0]["val_loss"], rel=1e-5)
    assert rows["cl"][1]["train_loss"] == pytest.approx(rows["plain"][1]["train_loss"], rel=1e-2)
    from safetensors.torch import load_file

    keys = load_file(str(tmp_path / "compiled" / "last" / "model.safetensors")).keys()
    assert keys and not any(k.startswith("_orig_mod") for k in keys)


def test_config_keys_are_validated() -> None:
    from svqcast.config import validate_config

    cfg = load_config("_defaults")
    assert cfg["train"]["channels_last"] == "auto" and cfg["train"]["compile"] is False
    assert cfg["model"]["fused_attn"] is True
    with pytest.raises(UsageError, match="expected a boolean|expected a bool"):
        validate_config({"train": {"compile": "yes please"}})


def test_configure_forecaster_batches_every_initialisation() -> None:
    """Batch size changes how initialisations are grouped, not the forecast."""
    import numpy as np
    import xarray as xr

    import svqcast

    sample = Path(__import__("svqcast.data.samples", fromlist=["x"]).__file__).parent / "era5_uk_t2m_2019-03.nc"
    ds = xr.open_dataset(sample).load()
    inits = [np.datetime_as_string(t, unit="s") for t in ds["time"].values[-5:]]
    fc = svqcast.load_model()
    calls = []
    hook = fc.net.register_forward_pre_hook(lambda m, a: calls.append(a[0].shape[0]))
    out = {}
    for bs in (1, 5):
        FP.configure_forecaster(fc, batch_size=bs)
        calls.clear()
        out[bs] = fc.predict(ds, lead_time="24h", init_time=inits)
        assert calls == ([1] * 10 if bs == 1 else [5, 5])  # 5 inits x 2 roll-out calls
    hook.remove()
    var = fc.variables[0]
    np.testing.assert_allclose(out[1][var].values, out[5][var].values, rtol=1e-5, atol=1e-4)
    with pytest.raises(UsageError, match="at least 1"):
        FP.configure_forecaster(fc, batch_size=0)


def _gpu_check_module():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA exit")
def test_gpu_check_without_cuda_exits_cleanly(tmp_path) -> None:
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "gpu_check: skipped: no CUDA GPU is visible" in proc.stderr
    assert not out.exists()
    assert _gpu_check_module().no_cuda_reason().startswith("no CUDA GPU")


def test_gpu_check_reason_is_none_with_cuda(monkeypatch) -> None:
    mod = _gpu_check_module()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert mod.no_cuda_reason() is None


def test_predict_cli_batch_size_does_not_change_the_forecast(tmp_path, capsys) -> None:
    import numpy as np
    import xarray as xr

    from svqcast.cli import main

    sample = Path(__import__("svqcast.data.samples", fromlist=["x"]).__file__).parent / "era5_uk_t2m_2019-03.nc"
    inits = ["2019-03-30T00:00:00", "2019-03-30T06:00:00", "2019-03-30T12:00:00"]
    args = [str(sample), "--lead-time", "24h", *[a for t in inits for a in ("--init-time", t)]]
    outs = {}
    for bs in ("1", "3"):
        target = tmp_path / f"fc{bs}.nc"
        try:
            main.run(["predict", *args, "-o", str(target), "--batch-size", bs])
        except SystemExit as exc:
            assert not exc.code, capsys.readouterr().err
        with xr.open_dataset(target) as ds:
            outs[bs] = ds["t2m"].values
    assert outs["1"].shape[:2] == (3, 24)
    np.testing.assert_allclose(outs["1"], outs["3"], rtol=1e-5, atol=1e-4)
    with pytest.raises(SystemExit) as info:
        main.run(["predict", *args, "-o", str(tmp_path / "x.nc"), "--batch-size", "0"])
    assert info.value.code == 2
