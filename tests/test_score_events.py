"""`svqcast score --thresholds --fss-scales` on real radar fields (the embedded KNMI sample).

The forecast is the truth displaced by two cells plus noise; the oracle pools contingency
counts and FSS terms over initialisations with explicit numpy loops (FSS windows that lie
inside the grid, `scores`' default), with 1mm/h converted to an accumulation per 5 minutes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from _cli import run_cli

from svqcast.data.samples import SAMPLES_DIR

STEP = np.timedelta64(5, "m")


def _radar() -> tuple[np.ndarray, np.ndarray]:
    with np.load(SAMPLES_DIR / "knmi_radar_2010-08-26.npz") as z:
        values = z["precip_q"].astype(np.float64) * float(z["scale"])
    times = np.datetime64("2010-08-26T00:00", "ns") + np.arange(values.shape[0]) * STEP
    return values[:, :48, :40], times.astype("datetime64[ns]")


def _files(tmp: Path, units: str | None = "mm") -> tuple[Path, Path, np.ndarray, np.ndarray]:
    obs, times = _radar()
    rng = np.random.default_rng(0)
    inits = np.arange(40, 52)
    leads = np.arange(1, 4)
    fc = np.stack([np.stack([np.roll(obs[i], 2, axis=1) * rng.uniform(0.7, 1.3) for _ in leads]) for i in inits])
    attrs = {} if units is None else {"units": units}
    xr.Dataset({"precip": (("time", "lead_time", "y", "x"), fc.astype("f4"), attrs)},
               coords={"time": times[inits], "lead_time": (leads * STEP).astype("timedelta64[ns]"),
                       "y": np.arange(48), "x": np.arange(40)}).to_netcdf(tmp / "f.nc")
    xr.Dataset({"precip": (("time", "y", "x"), obs.astype("f4"), attrs)},
               coords={"time": times, "y": np.arange(48), "x": np.arange(40)}).to_netcdf(tmp / "t.nc")
    truth = np.stack([obs[inits + k] for k in leads], axis=1)  # (init, lead, H, W)
    return tmp / "f.nc", tmp / "t.nc", fc.astype("f4").astype(np.float64), truth.astype("f4").astype(np.float64)


def _fss_terms(f: np.ndarray, o: np.ndarray, scale: int) -> tuple[float, float]:
    h, w = f.shape
    mse = ref = 0.0
    for i in range(h - scale + 1):
        for j in range(w - scale + 1):
            pf, po = f[i:i + scale, j:j + scale].mean(), o[i:i + scale, j:j + scale].mean()
            mse += (pf - po) ** 2
            ref += pf**2 + po**2
    return mse, ref


def test_categorical_scores_and_fss_equal_the_oracle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fpath, tpath, fc, truth = _files(tmp_path)
    code, out, err = run_cli(["score", fpath, "--truth", tpath, "--thresholds", "1mm/h,0.5", "--fss-scales", "1,3",
                              "--bootstrap", "0", "--format", "json"], capsys)
    assert code == 0, err
    ev = json.loads(out)["variables"]["precip"]["events"]
    assert ev["1mm/h"]["threshold"] == pytest.approx(1 / 12)
    for label, thr in (("1mm/h", 1 / 12), ("0.5", 0.5)):
        for j in range(3):
            f, o = fc[:, j] >= thr, truth[:, j] >= thr
            hits, fa, miss = (f & o).sum(), (f & ~o).sum(), (~f & o).sum()
            cn = f.size - hits - fa - miss
            rand = (hits + miss) * (hits + fa) / f.size
            assert ev[label]["pod"][j] == pytest.approx(hits / (hits + miss), rel=1e-12)
            assert ev[label]["far"][j] == pytest.approx(fa / (hits + fa), rel=1e-12)
            assert ev[label]["csi"][j] == pytest.approx(hits / (hits + fa + miss), rel=1e-12)
            assert ev[label]["ets"][j] == pytest.approx((hits - rand) / (hits + fa + miss - rand), rel=1e-10)
            assert ev[label]["frequency_bias"][j] == pytest.approx((hits + fa) / (hits + miss), rel=1e-12)
            assert cn >= 0
            for scale in (1, 3):
                terms = np.array([_fss_terms(f[i].astype(float), o[i].astype(float), scale) for i in range(len(f))])
                want = 1 - terms[:, 0].sum() / terms[:, 1].sum()
                assert ev[label]["fss"][str(scale)][j] == pytest.approx(want, rel=1e-10)


def test_thresholds_need_units(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fpath, tpath, _, _ = _files(tmp_path, units=None)
    code, out, err = run_cli(["score", fpath, "--truth", tpath, "--thresholds", "1"], capsys)
    assert code == 2 and "has no units" in err and len(err.strip().splitlines()) == 1 and out == ""
    code, _, err = run_cli(["score", fpath, "--truth", tpath, "--thresholds", "heavy"], capsys)
    assert code == 2 and "--thresholds" in err
