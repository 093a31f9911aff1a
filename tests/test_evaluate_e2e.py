"""The real thing, through the CLI: train the small era5-uk-t2m preset for one short epoch,
then evaluate it on the test split (json and csv), and check the reported numbers against
an independent float64 recomputation."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _predict_fixtures import open_sample
from _train_standins import one_thread

SVQCAST = str(Path(sys.executable).parent / "svqcast")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    env = dict(os.environ, SVQCAST_DATA_DIR=str(root / "data"), OMP_NUM_THREADS="1", NO_COLOR="1")
    run = root / "run"
    proc = subprocess.run(
        [SVQCAST, "train", "--preset", "era5-uk-t2m_gsta_svq", "--run-dir", str(run), "--max-epochs", "1",
         "--set", "train.max_steps_per_epoch=3", "--set", "train.batch_size=4", "--set", "train.max_val_steps=2",
         "--deterministic", "--format", "json"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return run, env, json.loads(proc.stdout)


def _evaluate(run: Path, env: dict, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SVQCAST, "evaluate", str(run), "--dataset", "era5-uk-t2m", "--split", "test", *extra],
        capture_output=True, text=True, env=env, timeout=300,
    )


def test_train_then_evaluate_through_cli(trained) -> None:
    run, env, report = trained
    assert report["epochs_done"] == 1 and report["best_epoch"] == 1
    for name in ("config.json", "metrics.csv", "metrics.jsonl", "trainer_state.pt"):
        assert (run / name).is_file(), name
    meta = json.loads((run / "best" / "config.json").read_text())
    assert meta["data_spec"]["dataset"] == "era5-uk-t2m" and meta["data_spec"]["std"][0] > 0
    assert meta["provenance"]["seed"] == 42 and meta["config"]["train"]["deterministic"] is True

    proc = _evaluate(run, env, "--format", "json", "--per-lead-time")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["dataset"] == "era5-uk-t2m" and res["split"] == "test" and res["kind"] == "weather"
    assert res["samples"] == 5 * 24 - 23  # 27-31 March hourly, 12 -> 12 windows
    assert set(res["scores"]) == {"model", "persistence", "climatology", "same_hour_yesterday"}
    assert res["reference_samples"] == {"same_hour_yesterday": res["samples"]}  # 26 March is in val
    assert res["climatology"].startswith("time-of-day")
    model = res["scores"]["model"]
    assert set(model) >= {"mse", "mae", "rmse", "wb2"}
    assert model["rmse"] == pytest.approx(math.sqrt(model["mse"]))
    pers = res["per_lead_time"]["persistence"]
    assert len(pers["rmse"]["t2m"]) == 12
    assert pers["rmse"]["t2m"][0] < pers["rmse"]["t2m"][-1]  # persistence degrades with lead time
    assert pers["acc"]["t2m"][0] > 0.5  # and correlates strongly at +1 h
    assert res["scores"]["climatology"]["wb2"]["acc"]["t2m"] is None  # undefined, not NaN
    q = res["quantizer"]["code_usage"]
    assert 1.0 <= q["perplexity_2"] <= 10000 and 0.0 <= q["active_fraction_3"] <= q["active_fraction_2"] <= 1.0

    # independent float64 recomputation of the model's OpenSTL RMSE and persistence's WB2 RMSE
    from svqcast.data import get_split_dataset
    from svqcast.zoo.checkpoint import load_checkpoint

    old = os.environ.get("SVQCAST_DATA_DIR")
    os.environ["SVQCAST_DATA_DIR"] = env["SVQCAST_DATA_DIR"]
    try:
        net, _ = load_checkpoint(run / "best")
        ds = get_split_dataset("era5-uk-t2m", "test", t_in=12, t_out=12)
    finally:
        if old is None:
            os.environ.pop("SVQCAST_DATA_DIR")
        else:
            os.environ["SVQCAST_DATA_DIR"] = old
    mean, std = ds.spec.mean[0], ds.spec.std[0]
    obs = open_sample()["t2m"].astype(np.float64)
    sq = 0.0
    n = 0
    lat = np.asarray(ds.spec.coords["lat"])
    w = np.cos(np.deg2rad(lat))[:, None] * np.ones((1, 48))
    pers_sq = np.zeros(12)
    yday_ab = np.zeros(12)
    with torch.no_grad(), one_thread():
        for start in range(0, len(ds), 25):
            xs, ys = zip(*(ds[i] for i in range(start, min(start + 25, len(ds)))), strict=True)
            preds = net(torch.stack(xs)).double().numpy() * std + mean
            for k, (x, y, pn) in enumerate(zip(xs, ys, preds, strict=True)):
                t = y.double().numpy() * std + mean
                sq += float(((pn - t) ** 2).sum())
                n += t.size
                last = x[-1].double().numpy() * std + mean
                pers_sq += ((((last - t) ** 2)[:, 0] * w).sum(axis=(1, 2)) / w.sum())
                yday = obs.sel(time=ds.times(start + k)[1] - np.timedelta64(24, "h")).values
                yday_ab += (np.abs(yday - t[:, 0]) * w).sum(axis=(1, 2)) / w.sum()
    assert model["rmse"] == pytest.approx(math.sqrt(sq / n), rel=1e-5)
    np.testing.assert_allclose(pers["rmse"]["t2m"], np.sqrt(pers_sq / len(ds)), rtol=1e-9)
    # same hour yesterday: the raw sample 24 h before each target (float32 store -> rtol 1e-5)
    np.testing.assert_allclose(res["per_lead_time"]["same_hour_yesterday"]["mae"]["t2m"], yday_ab / len(ds),
                               rtol=1e-5)


def test_evaluate_csv_and_openstl_compat(trained) -> None:
    run, env, _ = trained
    proc = _evaluate(run, env, "--format", "csv", "--compat", "openstl", "--max-batches", "2")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert {r["metric"] for r in rows} == {"mse", "mae", "rmse"}
    assert {r["forecast"] for r in rows} == {"model"}
