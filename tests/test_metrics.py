"""Metrics against independent oracles: scikit-image SSIM, float64 hand computations,
OpenSTL's per-frame-sum convention on a hand example, ACC on constructed fields."""

from __future__ import annotations

import math

import numpy as np
import pytest

from svqcast.data.climatology import Climatology
from svqcast.data.samples import sample_path
from svqcast.errors import MissingExtraError
from svqcast.verify.metrics import (
    OpenSTLScores,
    acc_single,
    lat_weights,
    lpips_frames,
    openstl_metrics,
    psnr_frames,
    spatial_weights,
    ssim_frames,
)
from svqcast.verify.wb2scores import WB2Scores

skimage_metrics = pytest.importorskip("skimage.metrics")


def _skimage_ssim(p: np.ndarray, t: np.ndarray) -> float:
    """The official call on current scikit-image: (H, W, C) frames, data_range 2."""
    return skimage_metrics.structural_similarity(
        np.moveaxis(p, 0, -1), np.moveaxis(t, 0, -1), channel_axis=-1, data_range=2.0
    )


@pytest.mark.parametrize("shape", [(2, 3, 1, 16, 16), (1, 2, 3, 20, 17), (1, 1, 2, 7, 9)])
def test_ssim_matches_skimage_random(shape) -> None:
    rng = np.random.default_rng(sum(shape))
    true = rng.random(shape)
    pred = np.clip(true + 0.2 * rng.standard_normal(shape), 0, 1)
    got = ssim_frames(pred, true)
    want = np.array([[_skimage_ssim(pred[b, f], true[b, f]) for f in range(shape[1])] for b in range(shape[0])])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_ssim_matches_skimage_real_kth_frames() -> None:
    with np.load(sample_path("kth_walking_5clips.npz")) as z:  # the real KTH clips shipped as a sample
        clips = z["frames"].astype(np.float64) / 255.0  # (5, 75, 32, 32)
    true = clips[:, 10:14, None]  # (5, 4, 1, 32, 32)
    pred = clips[:, 9:13, None]  # "persistence": the previous frame
    got = ssim_frames(pred, true)
    want = np.array([[_skimage_ssim(pred[b, f], true[b, f]) for f in range(4)] for b in range(5)])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert 0.3 < got.mean() < 1.0  # real consecutive frames are similar, not identical
    np.testing.assert_allclose(ssim_frames(true, true), 1.0, atol=1e-12)


def test_psnr_hand_values() -> None:
    true = np.full((1, 2, 1, 4, 4), 0.6)
    pred = np.full((1, 2, 1, 4, 4), 0.5)
    pred[0, 1] = 0.6  # a perfect frame
    got = psnr_frames(pred, true)
    assert got[0, 0] == pytest.approx(20.0)  # mse 0.01 -> 20 log10(1 / 0.1)
    assert math.isinf(got[0, 1])


def test_openstl_per_frame_sum_hand_example() -> None:
    # Physical values; normalisation mean 1, std 2 must be undone before scoring.
    true = np.zeros((1, 2, 1, 2, 2))
    true[0, 0, 0] = [[1, 2], [3, 4]]  # squared error sum 30, abs sum 10
    true[0, 1, 0] = [[0, 0], [0, 2]]  # squared error sum 4, abs sum 2
    pred = np.zeros_like(true)
    norm = lambda a: (a - 1.0) / 2.0  # noqa: E731
    img = openstl_metrics(norm(pred), norm(true), "flow", [1.0], [2.0], clip_range=None)
    assert img == {"mse": pytest.approx(17.0), "mae": pytest.approx(6.0)}  # per-frame sums, mean of 2 frames
    wx = openstl_metrics(norm(pred), norm(true), "weather", [1.0], [2.0])
    assert wx["mse"] == pytest.approx(34 / 8)  # plain mean over 8 values
    assert wx["mae"] == pytest.approx(12 / 8)
    assert wx["rmse"] == pytest.approx(math.sqrt(34 / 8))  # sqrt of the global MSE


def test_openstl_rmse_is_sqrt_of_global_mse_not_mean_of_sample_rmse() -> None:
    true = np.zeros((2, 1, 1, 1, 2))
    pred = np.zeros_like(true)
    pred[0] = 3.0  # sample 0: rmse 3, sample 1: rmse 0
    wx = openstl_metrics(pred, true, "weather", [0.0], [1.0])
    assert wx["rmse"] == pytest.approx(math.sqrt(4.5))  # not (3 + 0) / 2


def test_openstl_weatherbench_m_groups() -> None:
    # 4 channels, 2 variables of 2 levels each; errors 1 and 3 (var a), 2 and 2 (var b)
    pred = np.zeros((1, 1, 4, 1, 1))
    true = np.array([1.0, 3.0, 2.0, 2.0]).reshape(1, 1, 4, 1, 1)
    got = openstl_metrics(pred, true, "weather", [0.0] * 4, [1.0] * 4, variables=["a", "b"])
    assert got["mse_a"] == pytest.approx(5.0) and got["mse_b"] == pytest.approx(4.0)
    assert got["rmse_a"] == pytest.approx(math.sqrt(5)) and got["rmse_b"] == pytest.approx(2.0)
    assert got["mse"] == pytest.approx(4.5)
    assert got["rmse"] == pytest.approx((math.sqrt(5) + 2) / 2)  # official: mean of group RMSEs


def test_openstl_image_clip_applies_to_prediction_only() -> None:
    true = np.full((1, 1, 1, 8, 8), 1.0)
    pred = np.full((1, 1, 1, 8, 8), 1.5)
    acc = OpenSTLScores("video", [0.0], [1.0], clip_range=[0.0, 1.0])
    acc.update(pred, true)
    out = acc.compute()
    assert out["mse"] == pytest.approx(0.25 * 64)  # unclipped for MSE
    assert math.isinf(out["psnr"]) and out["ssim"] == pytest.approx(1.0)  # clipped for PSNR/SSIM
    assert "lpips" not in out


def test_lat_weights_are_cos_lat_normalised() -> None:
    for lat in (np.arange(58.0, 50.0, -0.25), -87.1875 + 5.625 * np.arange(32)):
        w = lat_weights(lat)
        c = np.cos(np.deg2rad(lat))
        np.testing.assert_allclose(w, c / c.mean(), rtol=1e-12)
        assert w.mean() == pytest.approx(1.0)


def test_lat_weighted_rmse_mae_bias_against_float64_loops() -> None:
    rng = np.random.default_rng(3)
    lat = np.linspace(-60, 60, 5)
    b, t, c, h, w = 3, 2, 2, 5, 4
    fc = rng.standard_normal((b, t, c, h, w))
    ob = rng.standard_normal((b, t, c, h, w))
    acc = WB2Scores(spatial_weights(["lat", "lon"], {"lat": list(lat), "lon": list(range(w))}, (h, w)))
    acc.update(fc[:2], ob[:2])  # streaming in two chunks
    acc.update(fc[2:], ob[2:])
    got = acc.compute()
    cosw = [math.cos(math.radians(v)) for v in lat]
    for lt in range(t):
        for ch in range(c):
            sq = ab = bi = 0.0
            for n in range(b):
                num_sq = num_ab = num_bi = den = 0.0
                for i in range(h):
                    for j in range(w):
                        e = fc[n, lt, ch, i, j] - ob[n, lt, ch, i, j]
                        num_sq += cosw[i] * e * e
                        num_ab += cosw[i] * abs(e)
                        num_bi += cosw[i] * e
                        den += cosw[i]
                sq += num_sq / den
                ab += num_ab / den
                bi += num_bi / den
            assert got["rmse"][lt, ch] == pytest.approx(math.sqrt(sq / b), rel=1e-12)
            assert got["mae"][lt, ch] == pytest.approx(ab / b, rel=1e-12)
            assert got["bias"][lt, ch] == pytest.approx(bi / b, rel=1e-12, abs=1e-15)


def test_acc_constructed_cases() -> None:
    h, w = 6, 8
    lat = np.linspace(-50, 50, h)
    weights = spatial_weights(["lat", "lon"], {"lat": list(lat), "lon": list(range(w))}, (h, w))
    j = np.arange(w)
    a = np.tile(np.cos(2 * np.pi * j / w), (h, 1))  # a and b are orthogonal along every
    b = np.tile(np.sin(2 * np.pi * j / w), (h, 1))  # latitude row, so for any lat weights
    clim = np.full((h, w), 280.0)
    truth = clim + a
    assert acc_single(clim + 2 * a, truth, clim, weights) == pytest.approx(1.0)
    assert acc_single(clim - a, truth, clim, weights) == pytest.approx(-1.0)
    assert acc_single(clim + a + b, truth, clim, weights) == pytest.approx(1 / math.sqrt(2))
    assert acc_single(clim + b, truth, clim, weights) == pytest.approx(0.0, abs=1e-12)
    # the streaming accumulator: mean over forecasts of per-forecast ACC; undefined for
    # the climatology forecast itself (zero anomaly) -> NaN
    acc = WB2Scores(weights)
    fc = np.stack([clim + a, clim + a + b])[:, None, None]
    ob = np.stack([truth, truth])[:, None, None]
    cl = np.stack([clim, clim])[:, None, None]
    acc.update(fc, ob, cl)
    assert acc.compute()["acc"][0, 0] == pytest.approx((1 + 1 / math.sqrt(2)) / 2)
    ref = WB2Scores(weights)
    ref.update(cl, ob, cl)
    assert math.isnan(ref.compute()["acc"][0, 0])


def test_climatology_hour_fallback_and_day_of_year() -> None:
    times = np.arange("2019-03-01T00", "2019-03-04T00", dtype="datetime64[h]").astype("datetime64[ns]")
    hours = (times - times.astype("datetime64[D]")).astype("timedelta64[h]").astype(int)
    day = (times.astype("datetime64[D]") - np.datetime64("2019-03-01")).astype(int)
    frames = (hours + 10.0 * day)[:, None, None, None] * np.ones((1, 1, 2, 2))
    # duplicates (overlapping windows) must be counted once
    clim = Climatology.from_frames([(times[:30], frames[:30]), (times[20:], frames[20:])], calendar=True)
    assert clim.mode == "hour"
    at = clim.at(np.array(["2019-03-27T05"], dtype="datetime64[ns]"))
    assert at.shape == (1, 1, 2, 2)
    np.testing.assert_allclose(at, 5.0 + 10.0)  # hour 5, mean of days 0, 1, 2
    year = np.arange("2018-01-01", "2019-01-01", dtype="datetime64[D]").astype("datetime64[ns]")
    vals = np.arange(year.size, dtype=float)[:, None, None, None] * np.ones((1, 1, 1, 1))
    clim_y = Climatology.from_frames([(year, vals)], calendar=True)
    assert clim_y.mode == "dayofyear-hour"
    np.testing.assert_allclose(clim_y.at(np.array(["2030-01-03"], dtype="datetime64[ns]")), 2.0)
    frames_only = Climatology.from_frames([(np.arange(4), np.arange(4.0)[:, None, None, None])], calendar=False)
    assert frames_only.mode == "mean"
    np.testing.assert_allclose(frames_only.at(np.array([7])), 1.5)


def test_lpips_without_extra_is_a_clear_error() -> None:
    try:
        import lpips  # noqa: F401
    except ImportError:
        with pytest.raises(MissingExtraError, match=r"svqcast\[lpips\]"):
            lpips_frames(np.zeros((1, 1, 8, 8)), np.zeros((1, 1, 8, 8)))
    else:  # pragma: no cover
        pytest.skip("lpips installed")
