"""`svqcast evaluate` of a model trained on the embedded KNMI radar sample: CSI / ETS at 1 mm/h
and FSS for the model, persistence and the optical-flow extrapolation reference.

The references' numbers are recomputed here from the test split with numpy (persistence) and
with pysteps called directly (extrapolation), pooled over samples as the report says.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from _cli import run_cli

TINY = ["--set", "model.hid_S=8", "--set", "model.hid_T=16", "--set", "model.N_T=2", "--set", "model.mlp_ratio=2.0",
        "--set", "train.batch_size=4", "--set", "train.max_steps_per_epoch=2", "--set", "train.max_val_steps=1",
        "--set", "model.in_shape=[6,1,128,128]", "--set", "model.out_frames=6", "--progress", "none"]
RATE = 1.0 / 12.0  # 1 mm/h as mm per 5 minutes


def _csi(f: np.ndarray, o: np.ndarray) -> np.ndarray:
    fe, oe = f >= RATE, o >= RATE
    hits = (fe & oe).sum(axis=(0, 2, 3))
    return hits / (hits + (fe & ~oe).sum(axis=(0, 2, 3)) + (~fe & oe).sum(axis=(0, 2, 3)))


def test_radar_model_reports_csi_ets_fss_beside_extrapolation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        pytest.importorskip("pysteps")
    from pysteps import extrapolation, motion

    from svqcast.data import get_split_dataset

    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["train", "--preset", "era5-uk-t2m_gsta", "--dataset", "knmi-radar", "--run-dir",
                            tmp_path / "run", "--max-epochs", "1", *TINY], capsys)
    assert code == 0, err
    code, out, err = run_cli(["evaluate", tmp_path / "run", "--format", "json", "--fss-scales", "1,5"], capsys)
    assert code == 0, err
    events = json.loads(out)["events"]
    assert set(events) >= {"model", "persistence", "climatology", "extrapolation"}
    row = events["model"]["precip"]["1mm/h"]
    assert set(row) >= {"pod", "far", "csi", "ets", "frequency_bias", "fss"} and set(row["fss"]) == {"1", "5"}
    assert row["threshold"] == pytest.approx(RATE) and len(row["csi"]) == 6
    ds = get_split_dataset("knmi-radar", "test", t_in=6, t_out=6)
    xs, ys = zip(*(ds.raw(i) for i in range(len(ds))), strict=True)
    x, y = np.stack(xs)[:, :, 0].astype(np.float64), np.stack(ys)[:, :, 0].astype(np.float64)
    persist = np.repeat(x[:, -1:], 6, axis=1)
    np.testing.assert_allclose(events["persistence"]["precip"]["1mm/h"]["csi"], _csi(persist, y), rtol=1e-12)
    lk, advect = motion.get_method("LK"), extrapolation.get_method("semilagrangian")
    with contextlib.redirect_stdout(io.StringIO()):
        ext = np.stack([np.maximum(np.nan_to_num(advect(s[-1], lk(s[-3:], verbose=False), 6, outval=0.0)), 0.0)
                        for s in x])
    got = np.asarray(events["extrapolation"]["precip"]["1mm/h"]["csi"])
    np.testing.assert_allclose(got, _csi(ext, y), rtol=1e-9)
    assert (got > np.asarray(events["persistence"]["precip"]["1mm/h"]["csi"])).all()  # the harder reference
