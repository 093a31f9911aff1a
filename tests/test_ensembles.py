"""Ensembles end to end: `predict --members` (noise, lagged, models) and the probabilistic
scores of `score`, recomputed here with numpy from the written file.

The per-cell formulas are checked against the `scores` package in test_ensemble_metrics.py;
here the wiring is: members reproducible, lagged members aligned by valid time, the CRPS of
every lead equal to the fair estimator averaged with latitude weights, and every refusal one
line with nothing written.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from _cli import run_cli

from svqcast.data.samples import SAMPLES_DIR

SAMPLE = SAMPLES_DIR / "era5_uk_t2m_2019-03.nc"
INITS = ["--init-time", "2019-03-28T00:00", "--init-time", "2019-03-29T00:00"]
NOISE = ["--members", "6", "--perturb", "noise", "--noise-amplitude", "0.5", "--lead-time", "6h"]


def _fair_crps(members: np.ndarray, truth: np.ndarray) -> np.ndarray:
    m = members.shape[0]
    skill = np.mean([np.abs(x - truth) for x in members], axis=0)
    pairs = sum(np.abs(a - b) for a in members for b in members)
    return skill - pairs / (2 * m * (m - 1))


def test_noise_members_score_with_crps_spread_and_ranks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ens.nc"
    code, _, err = run_cli(["predict", SAMPLE, "-o", out, *INITS, *NOISE], capsys)
    assert code == 0, err
    code, _, err = run_cli(["predict", SAMPLE, "-o", tmp_path / "again.nc", *INITS, *NOISE], capsys)
    assert code == 0, err
    with xr.open_dataset(out) as a, xr.open_dataset(tmp_path / "again.nc") as b:
        assert a["t2m"].dims == ("time", "lead_time", "realization", "lat", "lon")
        assert a.attrs["svqcast_ensemble_kind"] == "noise"
        assert json.loads(a.attrs["svqcast_ensemble_amplitude"]) == [0.5]
        np.testing.assert_array_equal(a["t2m"].values, b["t2m"].values)  # same seed, same members
        fc = a["t2m"].values.astype(np.float64)
        lat = a["lat"].values.astype(np.float64)
        valid = a["valid_time"].values
    code, js, err = run_cli(["score", out, "--truth", SAMPLE, "--format", "json", "--bootstrap", "0"], capsys)
    assert code == 0, err
    v = json.loads(js)["variables"]["t2m"]
    assert v["ensemble"]["members"] == 6 and len(v["ensemble"]["rank_histogram"]["counts"]) == 6
    assert all(sum(c) == 2 * 32 * 48 for c in v["ensemble"]["rank_histogram"]["counts"])
    with xr.open_dataset(SAMPLE) as truth:
        obs = truth["t2m"].sel(time=valid.reshape(-1)).values.reshape(2, 6, 32, 48).astype(np.float64)
    w = np.repeat(np.cos(np.deg2rad(lat))[:, None], 48, axis=1)
    for j in range(6):
        crps = [np.sum(w * _fair_crps(np.moveaxis(fc[i, j], 0, 0), obs[i, j])) / w.sum() for i in range(2)]
        mean_err = [np.sum(w * (fc[i, j].mean(0) - obs[i, j]) ** 2) / w.sum() for i in range(2)]
        var = [np.sum(w * fc[i, j].var(axis=0, ddof=1)) / w.sum() for i in range(2)]
        row = v["per_lead"][j]
        assert row["crps"] == pytest.approx(np.mean(crps), rel=1e-9)
        assert row["rmse"] == pytest.approx(np.sqrt(np.mean(mean_err)), rel=1e-9)  # the ensemble mean's
        assert row["spread"] == pytest.approx(np.sqrt(np.mean(var)), rel=1e-9)
        assert row["spread_skill"] == pytest.approx(np.sqrt(7 / 6) * row["spread"] / row["rmse"], rel=1e-9)
    code, text, _ = run_cli(["score", out, "--truth", SAMPLE, "--bootstrap", "0"], capsys)
    assert "crps" in text and "rank histogram" in text
    code, csv_text, _ = run_cli(["score", out, "--truth", SAMPLE, "--format", "csv", "--bootstrap", "0"], capsys)
    assert "crps" in csv_text.splitlines()[0] and "spread_skill" in csv_text.splitlines()[0]


def test_wb2_zarr_ensemble_and_deterministic_crps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["predict", SAMPLE, "-o", tmp_path / "ens.zarr", "--layout", "wb2", *INITS, *NOISE],
                           capsys)
    assert code == 0, err
    with xr.open_zarr(tmp_path / "ens.zarr") as ds:
        assert ds["2m_temperature"].dims == ("time", "prediction_timedelta", "realization", "latitude", "longitude")
    code, js, err = run_cli(["score", tmp_path / "ens.zarr", "--truth", SAMPLE, "--format", "json"], capsys)
    assert code == 0, err
    assert json.loads(js)["variables"]["2m_temperature"]["per_lead"][0]["crps"] is not None
    code, _, err = run_cli(["predict", SAMPLE, "-o", tmp_path / "det.nc", *INITS, "--lead-time", "3h"], capsys)
    assert code == 0, err
    code, js, err = run_cli(["score", tmp_path / "det.nc", "--truth", SAMPLE, "--format", "json"], capsys)
    v = json.loads(js)["variables"]["t2m"]
    assert v["per_lead"][1]["crps"] == v["per_lead"][1]["mae"] and "equals its MAE" in v["crps_note"]


def test_lagged_members_are_earlier_forecasts_aligned_by_valid_time(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["predict", SAMPLE, "-o", tmp_path / "lag.nc", "--init-time", "2019-03-29T00:00",
                            "--members", "3", "--perturb", "lagged", "--lead-time", "4h"], capsys)
    assert code == 0, err
    code, _, err = run_cli(["predict", SAMPLE, "-o", tmp_path / "det.nc", "--init-time", "2019-03-28T22:00",
                            "--lead-time", "6h"], capsys)
    assert code == 0, err
    with xr.open_dataset(tmp_path / "lag.nc") as lag, xr.open_dataset(tmp_path / "det.nc") as det:
        # member 2 started 2 h earlier: its +1 h is that forecast's +3 h, valid at 01:00
        np.testing.assert_allclose(lag["t2m"].values[0, :, 2], det["t2m"].values[0, 2:6], atol=1e-4)
        assert str(lag["valid_time"].values[0, 0])[:16] == "2019-03-29T01:00"


def test_models_members_from_two_seeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    tiny = ["--set", "model.hid_S=8", "--set", "model.hid_T=16", "--set", "model.N_T=2", "--set", "train.batch_size=4",
            "--set", "train.max_steps_per_epoch=2", "--set", "train.max_val_steps=1", "--max-epochs", "1",
            "--progress", "none", "--preset", "era5-uk-t2m_gsta"]
    for seed in (1, 2):
        code, _, err = run_cli(["train", *tiny, "--seed", seed, "--run-dir", tmp_path / f"s{seed}"], capsys)
        assert code == 0, err
    code, _, err = run_cli(["predict", SAMPLE, "-o", tmp_path / "m.nc", "--perturb", "models", "--model",
                            tmp_path / "s1", "--model", tmp_path / "s2", "--init-time", "2019-03-29T00:00"], capsys)
    assert code == 0, err
    with xr.open_dataset(tmp_path / "m.nc") as ds:
        assert ds.sizes["realization"] == 2 and ds.attrs["svqcast_ensemble_kind"] == "models"
        assert not np.allclose(ds["t2m"].values[:, :, 0], ds["t2m"].values[:, :, 1])
    code, _, err = run_cli(["predict", SAMPLE, "-o", tmp_path / "bad.nc", "--perturb", "models", "--model",
                            tmp_path / "s1", "--model", "nyc-taxi_gsta_svq"], capsys)
    assert code == 3 and "must forecast the same variables" in err and not (tmp_path / "bad.nc").exists()
    code, _, err = run_cli(["predict", SAMPLE, "-o", tmp_path / "bad.nc", "--model", tmp_path / "s1", "--members",
                            "4"], capsys)
    assert code == 2 and "no fitted noise amplitude" in err and not (tmp_path / "bad.nc").exists()
    # a zoo entry that lists its members is a models ensemble by name
    (tmp_path / "zoo.toml").write_text(
        '[models."uk-seeds"]\ndescription = "two seeds"\npreset = "era5-uk-t2m_gsta"\n'
        'bundled = "zoo/bundled/era5-uk-t2m_gsta_svq"\n'
        f'members = ["{tmp_path / "s1"}", "{tmp_path / "s2"}"]\n')
    monkeypatch.setenv("SVQCAST_ZOO_REGISTRY", str(tmp_path / "zoo.toml"))
    code, _, err = run_cli(["predict", SAMPLE, "-o", tmp_path / "z.nc", "--perturb", "models", "--model", "uk-seeds",
                            "--init-time", "2019-03-29T00:00"], capsys)
    assert code == 0, err
    with xr.open_dataset(tmp_path / "z.nc") as ds, xr.open_dataset(tmp_path / "m.nc") as pair:
        np.testing.assert_array_equal(ds["t2m"].values, pair["t2m"].values)


def test_the_default_model_ships_a_calibrated_ensemble() -> None:
    """The bundled default carries its fitted amplitude and the held-out table its card shows;
    recomputed here (84 forecasts x 8 members, about 10 s)."""
    import svqcast
    from svqcast.verify.calibrate import ensemble_skill

    fc = svqcast.load_model("era5-uk-t2m_gsta_svq")
    stored = fc.meta["ensemble"]
    assert stored["kind"] == "noise" and stored["fitted_on"] == "era5-uk-t2m/val" and stored["amplitude"][0] > 0
    got = ensemble_skill(fc, members=stored["held_out"]["members"])
    for key in ("spread_skill", "crps", "mae", "crps_climatology"):
        np.testing.assert_allclose(got[key], stored["held_out"][key], rtol=2e-3, atol=2e-4)
    crps, mae, clim = (np.asarray(got[k]) for k in ("crps", "mae", "crps_climatology"))
    ratio = np.asarray(got["spread_skill"])
    assert ratio.shape == (12,) and ((ratio > 0.8) & (ratio < 1.2)).all()  # calibrated at every lead 1..12 h
    assert (crps < clim).all() and (crps < mae).all()
    d = stored["dispersion"]["t2m"]
    assert len(d) == 12 and d[0] < 1 < d[-1]  # over-dispersed at +1 h, under-dispersed at +12 h before it


@pytest.mark.parametrize(("args", "code", "needle"), [
    (["--members", "0"], 2, "at least 2 members"),
    (["--members", "1", "--noise-amplitude", "1"], 2, "at least 2 members"),
    (["--members", "4", "--noise-amplitude", "nan"], 2, "finite and not negative"),
    (["--members", "4", "--noise-amplitude", "-0.1"], 2, "finite and not negative"),
    (["--members", "4", "--noise-amplitude", "1,2"], 2, "one per channel"),
    (["--members", "4", "--perturb", "wind"], 2, "choose one of noise, lagged, models"),
    (["--members", "30", "--perturb", "lagged", "--init-time", "2019-03-02T12:00"], 3,
     "needs the 29 initialisations before 2019-03-02T12:00"),
])
def test_bad_members_are_one_line_and_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   args: list[str], code: int, needle: str) -> None:
    got, _, err = run_cli(["predict", SAMPLE, "-o", tmp_path / "e.nc", *args], capsys)
    assert got == code and needle in err and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


def test_plot_of_an_ensemble_maps_mean_and_spread(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    code, _, err = run_cli(["predict", SAMPLE, "-o", tmp_path / "ens.nc", "--init-time", "2019-03-29T00:00",
                            *NOISE], capsys)
    assert code == 0, err
    code, out, err = run_cli(["plot", tmp_path / "ens.nc", "--truth", SAMPLE, "-o", tmp_path / "ens.png",
                              "--format", "json"], capsys)
    assert code == 0, err
    assert (tmp_path / "ens.png").stat().st_size > 10_000 and json.loads(out)["scores"]


def test_evaluate_scores_the_models_noise_ensemble(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["evaluate", "era5-uk-t2m_gsta_svq", "--members", "2", "--thresholds", "280",
                              "--max-batches", "1", "--bootstrap", "0", "--format", "json"], capsys)
    assert code == 0, err
    r = json.loads(out)
    ens = r["ensemble"]
    assert ens["members"] == 2 and ens["samples"] == 84 and len(ens["crps"]) == 12 and len(ens["brier@280"]) == 12
    assert r["scores"]["model"]["wb2"]["crps"] == r["scores"]["model"]["wb2"]["mae"] and "CRPS" in r["crps_note"]


def test_dispersion_scales_each_leads_spread_and_keeps_the_mean() -> None:
    from svqcast.forecast.ensemble import apply_dispersion

    rng = np.random.default_rng(5)
    values = rng.normal(280.0, 2.0, (3, 6, 4, 2, 5, 7)).astype(np.float32)  # (n, M, T, C, H, W)
    factors = np.array([[0.5, 2.0], [1.0, 1.0], [1.5, 0.25]])  # fitted for 3 leads; lead 4 keeps lead 3's
    out = apply_dispersion(values, factors)
    np.testing.assert_allclose(out.mean(axis=1), values.mean(axis=1), rtol=1e-6)
    spread_in = values.astype(np.float64).std(axis=1, ddof=1)
    spread_out = out.astype(np.float64).std(axis=1, ddof=1)
    expect = factors[[0, 1, 2, 2]]  # (T, C)
    np.testing.assert_allclose(spread_out / spread_in, np.broadcast_to(expect[None, :, :, None, None],
                                                                       spread_in.shape), rtol=1e-4)


def test_models_calibrate_fits_amplitude_and_dispersion_and_predict_uses_them(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["models", "calibrate", "era5-uk-t2m_gsta_svq", "-o", tmp_path / "cal",
                              "--members", "4", "--samples", "4", "--report-format", "json"], capsys)
    assert code == 0, err
    fitted = json.loads(out)
    d = np.asarray(fitted["dispersion"]["t2m"])
    assert d.shape == (12,) and (d > 0).all()
    raw = np.asarray(fitted["spread_skill_by_lead_amplitude_only"]["t2m"])
    np.testing.assert_allclose(d, 1 / raw, rtol=1e-12)
    # on the samples it was fitted on, every lead's spread now equals its skill
    np.testing.assert_allclose(fitted["spread_skill_by_lead"]["t2m"], 1.0, rtol=1e-4)
    args = ["predict", SAMPLE, "--model", tmp_path / "cal", "--members", "4", "--init-time", "2019-03-29T00:00"]
    assert run_cli([*args, "-o", tmp_path / "a.nc"], capsys)[0] == 0
    assert run_cli([*args, "-o", tmp_path / "b.nc", "--noise-amplitude", str(fitted["amplitude"][0])], capsys)[0] == 0
    with xr.open_dataset(tmp_path / "a.nc") as a, xr.open_dataset(tmp_path / "b.nc") as b:
        assert "svqcast_ensemble_dispersion_by_lead" in a.attrs
        assert not any("dispersion" in k for k in b.attrs)
        ta, tb = a["t2m"].values, b["t2m"].values  # the same noise; only the dispersion differs
        np.testing.assert_allclose(ta.mean(axis=a["t2m"].dims.index("realization")),
                                   tb.mean(axis=b["t2m"].dims.index("realization")), atol=1e-3)
        axis = a["t2m"].dims.index("realization")
        lead_axis = a["t2m"].dims.index("lead_time")
        ratio = np.moveaxis(ta.std(axis=axis), lead_axis - (lead_axis > axis), 0).reshape(12, -1).mean(axis=1) / \
            np.moveaxis(tb.std(axis=axis), lead_axis - (lead_axis > axis), 0).reshape(12, -1).mean(axis=1)
        np.testing.assert_allclose(ratio, d, rtol=1e-3)
