"""svqcast.verify.ensemble_metrics against the independent ``scores`` package (2.7.0), float64 numpy
oracles written out as explicit loops, ``scipy.stats`` (the chi-square survival function) and
statistical checks on synthetic calibrated and under-dispersed ensembles.

Each check is built so that a plausible mistake fails it: the wrong CRPS denominator (fair vs
ecdf), ``>`` instead of ``>=`` for the Brier event (integer data put members and truth exactly on
the thresholds), ddof=0 variance, a spread/skill ratio without the ``(M + 1) / M`` factor (the
calibrated test uses M = 8, where the factor moves the ratio by 6 %), and ties broken always low.
"""

from __future__ import annotations

import math
import operator

import numpy as np
import pytest

from svqcast.verify.ensemble_metrics import (
    brier_ensemble,
    chi2_sf,
    crps_ensemble,
    ensemble_mean,
    ensemble_variance,
    rank_counts,
    rank_histogram_flatness,
    spread_skill_ratio,
    truth_ranks,
)

SEED = 20240607
DIMS = ("t", "y", "x")
TOL = 1e-12


@pytest.fixture(autouse=True, scope="module")
def _import_scores_once():
    """Import ``scores`` (xarray, pandas) once during setup, so its ~1 s import is not charged to
    whichever test runs first; the tests still importorskip it themselves."""
    try:
        import scores.probability  # noqa: F401
    except ImportError:
        pass


def _ensemble(m, shape=(3, 4, 5), seed=SEED, integer=False, nan_fraction=0.0):
    """(members (m, *shape), truth shape) from a fixed seed; integer data has many exact ties."""
    rng = np.random.default_rng(seed)
    if integer:
        x = rng.integers(0, 4, (m,) + shape).astype(np.float64)
        y = rng.integers(0, 4, shape).astype(np.float64)
    else:
        x = rng.normal(size=(m,) + shape)
        y = rng.normal(size=shape)
    if nan_fraction:
        x[rng.random((m,) + shape) < nan_fraction] = np.nan
        y[rng.random(shape) < nan_fraction] = np.nan
    return x, y


def _da(members, truth):
    xr = pytest.importorskip("xarray")
    fcst = xr.DataArray(members, dims=("member",) + DIMS[-truth.ndim:])
    obs = xr.DataArray(truth, dims=DIMS[-truth.ndim:])
    return fcst, obs


# ---------------------------------------------------------------- float64 loop oracles


def _crps_oracle(x, y, fair):
    m = x.shape[0]
    out = np.empty(y.shape)
    for cell in np.ndindex(y.shape):
        col = [float(x[(i,) + cell]) for i in range(m)]
        skill = sum(abs(v - float(y[cell])) for v in col) / m
        pairs = 0.0
        for i in range(m):
            for j in range(m):
                pairs += abs(col[i] - col[j])
        if m == 1:
            out[cell] = skill
        else:
            out[cell] = skill - pairs / (2.0 * m * (m - 1) if fair else 2.0 * m * m)
    return out


def _variance_oracle(x):
    m = x.shape[0]
    out = np.empty(x.shape[1:])
    for cell in np.ndindex(out.shape):
        col = [float(x[(i,) + cell]) for i in range(m)]
        mean = sum(col) / m
        out[cell] = sum((v - mean) ** 2 for v in col) / (m - 1)
    return out


def _brier_oracle(x, y, threshold, fair):
    m = x.shape[0]
    out = np.empty(y.shape)
    for cell in np.ndindex(y.shape):
        hits = sum(1 for i in range(m) if x[(i,) + cell] >= threshold)
        p = hits / m
        o = 1.0 if y[cell] >= threshold else 0.0
        out[cell] = (p - o) ** 2 - (p * (1 - p) / (m - 1) if fair and m > 1 else 0.0)
    return out


# ---------------------------------------------------------------- CRPS


@pytest.mark.parametrize("fair", [True, False])
@pytest.mark.parametrize("m", [2, 3, 8, 17])
@pytest.mark.parametrize("integer", [False, True])
def test_crps_matches_scores(fair, m, integer):
    probability = pytest.importorskip("scores.probability")
    x, y = _ensemble(m, integer=integer)
    fcst, obs = _da(x, y)
    expected = probability.crps_for_ensemble(fcst, obs, "member", method="fair" if fair else "ecdf",
                                             preserve_dims="all").transpose(*DIMS).values
    np.testing.assert_allclose(crps_ensemble(x, y, fair=fair), expected, rtol=0, atol=TOL)


@pytest.mark.parametrize("fair", [True, False])
@pytest.mark.parametrize("m", [1, 2, 5, 11])
def test_crps_matches_double_loop_oracle(fair, m):
    x, y = _ensemble(m, shape=(2, 3, 4), seed=SEED + m)
    np.testing.assert_allclose(crps_ensemble(x, y, fair=fair), _crps_oracle(x, y, fair), rtol=0, atol=TOL)


def test_crps_keeps_precision_with_a_large_offset():
    """The sorted-order identity is applied to centred members: an offset of 1e6 must not cost digits."""
    x, y = _ensemble(9, shape=(2, 5))
    base = crps_ensemble(x, y)
    np.testing.assert_allclose(crps_ensemble(x + 1e6, y + 1e6), base, rtol=0, atol=1e-9)


def test_crps_fair_differs_from_ecdf_by_the_spread_term():
    x, y = _ensemble(4, shape=(6,))
    mean_abs_pair = np.abs(x[:, None] - x[None, :]).sum(axis=(0, 1))
    np.testing.assert_allclose(crps_ensemble(x, y, fair=False) - crps_ensemble(x, y, fair=True),
                               mean_abs_pair * (1 / 24 - 1 / 32), rtol=0, atol=TOL)


def test_crps_of_one_member_is_the_absolute_error_and_documents_the_scores_difference():
    probability = pytest.importorskip("scores.probability")
    x, y = _ensemble(1)
    np.testing.assert_allclose(crps_ensemble(x, y, fair=True), np.abs(x[0] - y), rtol=0, atol=0)
    np.testing.assert_allclose(crps_ensemble(x, y, fair=False), np.abs(x[0] - y), rtol=0, atol=0)
    fcst, obs = _da(x, y)
    ecdf = probability.crps_for_ensemble(fcst, obs, "member", method="ecdf", preserve_dims="all")
    np.testing.assert_allclose(ecdf.transpose(*DIMS).values, np.abs(x[0] - y), rtol=0, atol=TOL)
    with np.errstate(invalid="ignore", divide="ignore"):
        fair = probability.crps_for_ensemble(fcst, obs, "member", method="fair", preserve_dims="all")
    assert np.isnan(fair.values).all()  # what the docstring says scores does with one member


@pytest.mark.parametrize("fair", [True, False])
def test_crps_nan_in_truth_or_any_member_makes_only_that_cell_nan(fair):
    x, y = _ensemble(6, shape=(4, 5))
    clean = crps_ensemble(x, y, fair=fair)
    x[2, 1, 3] = np.nan
    y[0, 0] = np.nan
    out = crps_ensemble(x, y, fair=fair)
    nan = np.zeros(y.shape, dtype=bool)
    nan[1, 3] = nan[0, 0] = True
    np.testing.assert_array_equal(np.isnan(out), nan)
    np.testing.assert_allclose(out[~nan], clean[~nan], rtol=0, atol=TOL)


def test_crps_is_zero_for_a_perfect_ensemble_and_rejects_bad_shapes():
    y = np.linspace(-1, 1, 7)
    assert np.all(crps_ensemble(np.stack([y] * 5), y) == 0)
    with pytest.raises(ValueError, match="shape"):
        crps_ensemble(np.zeros((3, 4)), np.zeros(5))
    with pytest.raises(ValueError, match="member"):
        crps_ensemble(np.zeros((0, 4)), np.zeros(4))


# ---------------------------------------------------------------- mean, variance, spread/skill


@pytest.mark.parametrize("m", [2, 3, 10])
def test_mean_and_variance_match_loop_oracles(m):
    x, _ = _ensemble(m, shape=(2, 3, 4))
    np.testing.assert_allclose(ensemble_variance(x), _variance_oracle(x), rtol=1e-13, atol=0)
    np.testing.assert_allclose(ensemble_mean(x), x.sum(axis=0) / m, rtol=1e-14, atol=1e-15)


def test_variance_of_one_member_is_nan_and_nan_members_propagate():
    x, _ = _ensemble(1)
    with np.errstate(all="raise"):  # no degrees-of-freedom warning either
        assert np.isnan(ensemble_variance(x)).all()
    x, _ = _ensemble(4, shape=(3,))
    x[1, 2] = np.nan
    assert np.isnan(ensemble_variance(x)).tolist() == [False, False, True]
    assert np.isnan(ensemble_mean(x)).tolist() == [False, False, True]


def test_spread_skill_ratio_formula():
    assert spread_skill_ratio(4.0, 9.0, 3) == pytest.approx(math.sqrt(4 / 3) * 2 / 3, rel=1e-15)
    assert isinstance(spread_skill_ratio(1.0, 1.0, 5), float)
    arr = spread_skill_ratio(np.array([1.0, 2.0]), np.array([2.0, 1.0]), 4)
    np.testing.assert_allclose(arr, np.sqrt(1.25 * np.array([0.5, 2.0])), rtol=1e-15)
    with pytest.raises(ValueError):
        spread_skill_ratio(1.0, 1.0, 0)


def _calibrated(m=8, cells=20000, seed=SEED):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(m, cells)), rng.normal(size=cells)


def _under_dispersed(m=8, cells=20000, seed=SEED):
    rng = np.random.default_rng(seed)
    centre = rng.normal(size=cells)
    return centre + 0.5 * rng.normal(size=(m, cells)), centre + rng.normal(size=cells)


def _ratio(x, y):
    mse = float(np.mean((ensemble_mean(x) - y) ** 2))
    return spread_skill_ratio(float(np.mean(ensemble_variance(x))), mse, x.shape[0])


def _flatness(x, y, seed=SEED):
    ranks = truth_ranks(x, y, np.random.default_rng(seed))
    return rank_histogram_flatness(rank_counts(ranks, x.shape[0]))


def test_calibrated_ensemble_has_ratio_one_and_a_flat_rank_histogram():
    x, y = _calibrated()
    ratio = _ratio(x, y)
    assert abs(ratio - 1.0) < 0.05
    assert abs(ratio / math.sqrt(9 / 8) - 1.0) > 0.02  # without the (M + 1) / M factor it would be off
    _, p = _flatness(x, y)
    assert p > 1e-3


def test_under_dispersed_ensemble_has_a_low_ratio_and_a_u_shaped_histogram():
    x, y = _under_dispersed()
    assert _ratio(x, y) < 0.8
    counts = rank_counts(truth_ranks(x, y, np.random.default_rng(SEED)), 8)
    assert counts[0] > 2 * counts[4] and counts[-1] > 2 * counts[4]  # U shape
    _, p = rank_histogram_flatness(counts)
    assert p < 1e-6


# ---------------------------------------------------------------- ranks


@pytest.mark.parametrize("m", [1, 4, 9])
def test_ranks_match_scores_on_continuous_data(m):
    probability = pytest.importorskip("scores.probability")
    x, y = _ensemble(m, shape=(5, 6, 7), seed=SEED + m)
    ranks = truth_ranks(x, y, np.random.default_rng(0))
    fcst, obs = _da(x, y)
    per_cell = probability.rank_histogram(fcst, obs, "member", preserve_dims="all").transpose(*DIMS, "rank")
    np.testing.assert_array_equal(per_cell.values.argmax(axis=-1), ranks)  # one-hot at scores' rank - 1
    assert np.all(per_cell.values.max(axis=-1) == 1.0)
    overall = probability.rank_histogram(fcst, obs, "member", reduce_dims="all").values
    counts = rank_counts(ranks, m)
    assert counts.shape == (m + 1,) and counts.sum() == y.size
    np.testing.assert_allclose(counts / y.size, overall, rtol=0, atol=TOL)


def test_ranks_count_members_strictly_below_the_truth():
    x = np.array([[0.0, 5.0], [1.0, 6.0], [2.0, 7.0]])
    y = np.array([1.5, 100.0])
    assert truth_ranks(x, y, np.random.default_rng(0)).tolist() == [2, 3]
    assert truth_ranks(x, y, np.random.default_rng(0)).dtype == np.int64


def test_ties_are_broken_uniformly_like_scores_spreads_them():
    """Integer data: the truth often equals members. The random draw must reproduce, on average,
    scores' fractional histogram (mass split evenly over the tied ranks); always ranking a tie
    lowest (or highest) would tilt it by several percent per bin."""
    probability = pytest.importorskip("scores.probability")
    x, y = _ensemble(4, shape=(60000,), integer=True)
    ranks = truth_ranks(x, y, np.random.default_rng(1))
    fcst, obs = _da(x, y)
    expected = probability.rank_histogram(fcst, obs, "member", reduce_dims="all").values
    np.testing.assert_allclose(rank_counts(ranks, 4) / y.size, expected, rtol=0, atol=0.006)
    below = (x < y).sum(axis=0)
    tied = (x == y).sum(axis=0)
    assert np.all((ranks >= below) & (ranks <= below + tied))


def test_all_tied_truth_gets_a_uniform_rank_and_the_generator_makes_it_reproducible():
    y = np.zeros(20000)
    x = np.zeros((5, 20000))
    ranks = truth_ranks(x, y, np.random.default_rng(3))
    np.testing.assert_array_equal(ranks, truth_ranks(x, y, np.random.default_rng(3)))
    _, p = rank_histogram_flatness(rank_counts(ranks, 5))
    assert p > 1e-3


def test_nan_ranks_are_minus_one_and_not_counted():
    x, y = _ensemble(3, shape=(4, 5), nan_fraction=0.1)
    ranks = truth_ranks(x, y, np.random.default_rng(0))
    invalid = np.isnan(y) | np.isnan(x).any(axis=0)
    assert invalid.any() and (~invalid).any()
    np.testing.assert_array_equal(ranks == -1, invalid)
    counts = rank_counts(ranks, 3)
    assert counts.sum() == (~invalid).sum()
    np.testing.assert_array_equal(counts, np.bincount(ranks[~invalid], minlength=4))


def test_rank_counts_rejects_out_of_range_and_float_ranks():
    with pytest.raises(ValueError, match="range"):
        rank_counts(np.array([0, 4]), 3)
    with pytest.raises(TypeError):
        rank_counts(np.array([0.0, 1.0]), 3)
    assert rank_counts(np.array([], dtype=np.int64), 2).tolist() == [0, 0, 0]


# ---------------------------------------------------------------- chi-square


@pytest.mark.parametrize("dof", [1, 2, 3, 7, 8, 20, 50, 101])
def test_chi2_sf_matches_scipy(dof):
    stats = pytest.importorskip("scipy.stats")
    for statistic in [1e-8, 0.01, 0.5, 1.0, 0.5 * dof, dof - 1, dof, dof + 1.5, 2.0 * dof + 3, 5.0 * dof + 40,
                      300.0, 1200.0]:
        expected = float(stats.chi2.sf(statistic, dof))
        assert chi2_sf(statistic, dof) == pytest.approx(expected, rel=1e-10, abs=1e-300), (statistic, dof)


def test_chi2_sf_edges():
    assert chi2_sf(0.0, 3) == 1.0 and chi2_sf(-1.0, 3) == 1.0
    assert chi2_sf(math.inf, 3) == 0.0
    assert math.isnan(chi2_sf(math.nan, 3))
    with pytest.raises(ValueError):
        chi2_sf(1.0, 0)


@pytest.mark.parametrize("counts", [[10, 12, 9, 11], [50, 0, 0, 0, 50], [3, 3, 3], [100, 90, 120, 80, 95, 115]])
def test_flatness_matches_scipy_chisquare(counts):
    stats = pytest.importorskip("scipy.stats")
    expected = stats.chisquare(counts)
    statistic, p = rank_histogram_flatness(np.array(counts))
    assert statistic == pytest.approx(float(expected.statistic), rel=1e-13, abs=1e-13)
    assert p == pytest.approx(float(expected.pvalue), rel=1e-10)


def test_flatness_edges():
    assert all(math.isnan(v) for v in rank_histogram_flatness(np.zeros(4, dtype=np.int64)))
    with pytest.raises(ValueError):
        rank_histogram_flatness(np.array([5]))
    with pytest.raises(ValueError):
        rank_histogram_flatness(np.array([5, -1]))


# ---------------------------------------------------------------- Brier


@pytest.mark.parametrize("fair", [True, False])
@pytest.mark.parametrize("m", [1, 2, 5])
@pytest.mark.parametrize("integer", [True, False])
def test_brier_matches_scores(fair, m, integer):
    probability = pytest.importorskip("scores.probability")
    thresholds = [0.0, 1.0, 2.0, 3.0] if integer else [-1.0, -0.2, 0.0, 0.7, 1.5]
    x, y = _ensemble(m, integer=integer, seed=SEED + 7 * m)
    fcst, obs = _da(x, y)
    expected = probability.brier_score_for_ensemble(fcst, obs, "member", thresholds, preserve_dims="all",
                                                    fair_correction=fair)
    for threshold in thresholds:
        want = expected.sel(threshold=threshold).transpose(*DIMS).values
        np.testing.assert_allclose(brier_ensemble(x, y, threshold, fair=fair), want, rtol=0, atol=TOL)


def test_brier_event_is_greater_or_equal_not_greater():
    """On integer data with the threshold on the values, scores' strict ``operator.gt`` differs."""
    probability = pytest.importorskip("scores.probability")
    x, y = _ensemble(5, integer=True)
    fcst, obs = _da(x, y)
    strict = probability.brier_score_for_ensemble(fcst, obs, "member", 2.0, preserve_dims="all",
                                                  event_threshold_operator=operator.gt)
    strict_values = strict.sel(threshold=2.0).transpose(*DIMS).values
    assert np.abs(brier_ensemble(x, y, 2.0) - strict_values).max() > 0.1
    np.testing.assert_allclose(brier_ensemble(x, y, 2.5), strict_values, rtol=0, atol=TOL)


@pytest.mark.parametrize("fair", [True, False])
@pytest.mark.parametrize("m", [1, 3, 6])
def test_brier_matches_loop_oracle(fair, m):
    x, y = _ensemble(m, shape=(3, 4), integer=True, seed=SEED + m)
    for threshold in [0.0, 1.0, 2.5, 3.0]:
        np.testing.assert_allclose(brier_ensemble(x, y, threshold, fair=fair), _brier_oracle(x, y, threshold, fair),
                                   rtol=0, atol=TOL)


def test_brier_nan_cells_and_nan_threshold():
    x, y = _ensemble(4, shape=(3, 3))
    x[0, 1, 1] = np.nan
    y[2, 0] = np.nan
    out = brier_ensemble(x, y, 0.0)
    assert np.isnan(out).sum() == 2 and np.isnan(out[1, 1]) and np.isnan(out[2, 0])
    with pytest.raises(ValueError):
        brier_ensemble(x, y, math.nan)
