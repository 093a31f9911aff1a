"""`svqcast evaluate` per WeatherBench2 region and with bootstrap intervals.

`WB2Scores` with a region mask and kept samples is checked against a float64 numpy oracle
(weights renormalised over the region's valid cells, intervals by the documented bootstrap);
through the CLI, the bundled UK model's Europe scores equal its global ones (the UK grid lies
inside WeatherBench2's Europe box) and a region off its grid is refused.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from _cli import run_cli

from svqcast.verify.metrics import lat_weights
from svqcast.verify.regions import REGIONS
from svqcast.verify.wb2scores import WB2Scores


def test_region_and_intervals_equal_the_oracle() -> None:
    rng = np.random.default_rng(5)
    lat, lon = np.linspace(70.0, 20.0, 11), np.arange(-30.0, 50.0, 5.0)
    b, t, c = 9, 3, 2
    f = rng.normal(size=(b, t, c, lat.size, lon.size))
    o = rng.normal(size=f.shape)
    o[:, :, 1, :2, :3] = np.nan  # masked cells of channel 1
    w2 = np.repeat(lat_weights(lat.tolist())[:, None], lon.size, axis=1)
    region = REGIONS["europe"].mask(lat, lon)
    acc = WB2Scores(w2, region=region, keep_samples=True)
    for k in range(0, b, 4):
        acc.update(f[k:k + 4], o[k:k + 4])
    got = acc.compute()
    mse = np.zeros((b, t, c))
    for i in range(b):
        for j in range(t):
            for ch in range(c):
                ok = region & np.isfinite(o[i, j, ch])
                err = f[i, j, ch] - o[i, j, ch]
                mse[i, j, ch] = np.sum(w2[ok] * err[ok] ** 2) / np.sum(w2[ok])
    np.testing.assert_allclose(got["rmse"], np.sqrt(mse.mean(axis=0)), rtol=1e-12)
    picks = np.random.default_rng(0).integers(0, b, (1000, b))
    lo, hi = np.quantile(np.sqrt(mse[picks].mean(axis=1)), [0.025, 0.975], axis=0)
    per_lead, _ = acc.intervals(1000, 0.95, 0)["rmse"]
    np.testing.assert_allclose(per_lead, np.stack([lo, hi]), rtol=1e-12)


def test_evaluate_regions_and_intervals_through_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["evaluate", "era5-uk-t2m_gsta_svq", "--region", "europe", "--bootstrap", "200",
                              "--format", "json", "--max-batches", "2"], capsys)
    assert code == 0, err
    r = json.loads(out)
    model = r["scores"]["model"]
    assert r["regions"]["europe"]["model"]["rmse"]["t2m"] == pytest.approx(model["wb2"]["rmse"]["t2m"], rel=1e-12)
    lo, hi = model["wb2_ci"]["rmse"]["t2m"]
    assert lo < model["wb2"]["rmse"]["t2m"] < hi and r["confidence"]["resamples"] == 200
    code, out, err = run_cli(["evaluate", "era5-uk-t2m_gsta_svq", "--region", "tropics", "--max-batches", "1"], capsys)
    assert code == 3 and "holds no cell of the grid" in err and out == ""
