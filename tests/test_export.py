"""`svqcast models export` on the bundled model: each format matches PyTorch, and the exported
directory alone (network + data_spec.json) is enough to forecast without svqcast."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from _cli import run_cli
from _predict_fixtures import SAMPLE

INIT = "2019-03-29T00:00"


def _pytorch_reference(x: np.ndarray) -> np.ndarray:
    import torch

    from svqcast.forecast.forecaster import load_network

    net, _, _, _ = load_network(None)
    with torch.no_grad():
        y = net(torch.from_numpy(x))
    return (y[0] if isinstance(y, (tuple, list)) else y).numpy()


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from svqcast.forecast.export import export_model

    root = tmp_path_factory.mktemp("exports")
    out = {}
    for fmt in ("onnx", "torchscript", "pt2"):
        if fmt == "onnx":
            pytest.importorskip("onnx")
        report = export_model(None, fmt, root / fmt)
        assert report["files"] == sorted(["data_spec.json", {"onnx": "model.onnx", "torchscript": "model.pt",
                                                              "pt2": "model.pt2"}[fmt]])
        out[fmt] = root / fmt
    return out


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "pt2"])
def test_each_format_matches_pytorch_on_a_real_sample(fmt: str, exports: dict[str, Path]) -> None:
    from svqcast.forecast.export import load_exported, validation_sample

    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    run, doc = load_exported(exports[fmt])
    sample = validation_sample(_spec_of_bundled())
    assert "era5" in sample.description  # the embedded real sample, not noise
    got = run(sample.x)
    want = _pytorch_reference(sample.x)
    assert got.shape == want.shape == (1, 12, 1, 32, 48)
    assert np.abs(got - want).max() <= 1e-4
    assert np.abs(want).max() > 0.1  # a real forecast, not zeros
    if fmt == "onnx":  # the batch dimension stays dynamic
        batch = np.concatenate([sample.x, sample.x[:, ::-1].copy()], axis=0)
        assert np.abs(run(batch) - _pytorch_reference(batch)).max() <= 1e-4
        assert doc["input"]["shape"][0] is None


def _spec_of_bundled() -> object:
    from svqcast.data.spec import DataSpec
    from svqcast.forecast.forecaster import load_network

    _, meta, _, _ = load_network(None)
    return DataSpec.from_dict(dict(meta["data_spec"]))


CONSUMER = textwrap.dedent('''
    """A non-Python-svqcast consumer: json + numpy + xarray + onnxruntime only."""
    import json, sys
    import numpy as np, onnxruntime as ort, xarray as xr
    export, sample, init, out = sys.argv[1:5]
    spec = json.load(open(f"{export}/data_spec.json"))
    frames = spec["frames"]
    step = np.timedelta64(int(frames["time_step_seconds"]), "s")
    t0 = np.datetime64(init)
    ds = xr.open_dataset(sample)
    times = [t0 + k * step for k in frames["input_offsets"]]
    grid = spec["grid"]["coords"]
    x = np.stack([ds[v].sel(time=times, lat=grid["lat"], lon=grid["lon"]).values for v in spec["channel_names"]],
                 axis=1)[None].astype(np.float32)                       # (1, T_in, C, H, W)
    mean = np.array(spec["normalisation"]["mean"], np.float32).reshape(1, 1, -1, 1, 1)
    std = np.array(spec["normalisation"]["std"], np.float32).reshape(1, 1, -1, 1, 1)
    session = ort.InferenceSession(f"{export}/{spec['file']}", providers=["CPUExecutionProvider"])
    y = session.run(None, {spec["input"]["name"]: (x - mean) / std})[0]
    np.save(out, y * std + mean)
    assert not any(m == "svqcast" or m.startswith("svqcast.") for m in sys.modules)
''')


def test_data_spec_alone_normalises_and_denormalises(exports: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    import xarray as xr

    import svqcast

    script = tmp_path / "consumer.py"
    script.write_text(CONSUMER)
    out = tmp_path / "y.npy"
    res = subprocess.run([sys.executable, str(script), str(exports["onnx"]), str(SAMPLE), INIT, str(out)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    consumer = np.load(out)
    with xr.open_dataset(SAMPLE) as ds:
        reference = svqcast.load_model().predict(ds.load(), init_time=INIT)["t2m"].values
    assert consumer.shape == (1, 12, 1, 32, 48)
    np.testing.assert_allclose(consumer[:, :, 0], reference, atol=1e-3, rtol=0)


def test_cli_validate_reports_and_fails_above_tolerance(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnxruntime")

    def run(*args: object) -> tuple[int, str, str]:
        return run_cli(args, capsys)

    code, out, err = run("models", "export", "--format", "onnx", "-o", tmp_path / "ok", "--validate",
                         "--report-format", "json")
    assert code == 0, err
    report = json.loads(out)
    assert report["validation"]["max_abs_diff"] <= 1e-4 and report["validation"]["ok"]
    code, _, err = run("models", "export", "--format", "onnx", "-o", tmp_path / "ok")
    assert code == 2 and "--overwrite" in err
    code, _, err = run("models", "export", "--format", "onnx", "-o", tmp_path / "strict", "--validate",
                       "--tolerance", "1e-12")
    assert code == 1 and "differs from PyTorch" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok"]  # nothing half-written left behind
