"""svqcast.verify.categorical against the independent ``scores`` package (2.7.0), a numpy
brute-force oracle (for the masked FSS, which ``scores`` does not have) and hand-computed
tiny examples.

Data are small integer-valued fields, so values equal to the threshold occur: a ``>``
instead of ``>=`` event would fail. ``scores``' ``ThresholdEventOperator`` replaces a falsy
threshold (0) by its default, so the thresholds here are never 0."""

from __future__ import annotations

import operator

import numpy as np
import pytest

from svqcast.verify.categorical import (
    SCORE_NAMES,
    TABLE_FIELDS,
    categorical_scores,
    contingency,
    fss_from_terms,
    fss_terms,
)

SEED = 20240531
THRESHOLDS = [0.5, 1.0, 2.0, 3.0, 4.0]
SCALES = [1, 2, 3, 4, 7]  # 7 = the full height of the 7 x 9 test grid: a single window
DIMS = ("t", "y", "x")


@pytest.fixture(autouse=True, scope="module")
def _import_scores_once():
    """Import ``scores`` (xarray, pandas) during setup, so that its one-off import time is not
    charged to whichever test happens to run first; tests still importorskip it themselves."""
    try:
        import scores.categorical  # noqa: F401
        import scores.spatial  # noqa: F401
    except ImportError:
        pass


def _fields(shape=(4, 7, 9), nan_fraction=0.0, seed=SEED):
    rng = np.random.default_rng(seed)
    f = rng.integers(0, 5, shape).astype(np.float64)
    o = rng.integers(0, 5, shape).astype(np.float64)
    if nan_fraction:
        f[rng.random(shape) < nan_fraction] = np.nan
        o[rng.random(shape) < nan_fraction] = np.nan
    return f, o


def _da(a):
    xr = pytest.importorskip("xarray")
    return xr.DataArray(a, dims=DIMS[-a.ndim:])


def _scores_manager(f, o, threshold, preserve=("t",)):
    """A ``scores`` contingency manager per field (or reduced over everything: preserve=None)."""
    categorical = pytest.importorskip("scores.categorical")
    op = categorical.ThresholdEventOperator(default_op_fn=operator.ge)
    with np.errstate(invalid="ignore", divide="ignore"):
        manager = op.make_contingency_manager(_da(f), _da(o), event_threshold=threshold)
        if preserve is None:
            return manager.transform(reduce_dims="all")
        return manager.transform(preserve_dims=list(preserve))


def _scores_table(manager):
    c = manager.get_counts()
    return np.stack([c[k].values for k in ("tp_count", "fp_count", "fn_count", "tn_count")], axis=-1)


def _scores_scores(manager):
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "pod": manager.probability_of_detection().values,
            "far": manager.false_alarm_ratio().values,
            "csi": manager.critical_success_index().values,
            "ets": manager.equitable_threat_score().values,
            "frequency_bias": manager.frequency_bias().values,
        }


def _close(a, b):
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12, equal_nan=True)


# ----------------------------------------------------------------------- contingency tables


@pytest.mark.parametrize("nan_fraction", [0.0, 0.2])
@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_contingency_matches_scores(threshold, nan_fraction):
    pytest.importorskip("scores")
    f, o = _fields(nan_fraction=nan_fraction)
    table = contingency(f, o, threshold)
    assert table.shape == (4, 4) and table.dtype == np.float64
    _close(table, _scores_table(_scores_manager(f, o, threshold)))
    usable = ~(np.isnan(f) | np.isnan(o))
    _close(table.sum(-1), usable.sum(axis=(-2, -1)))


@pytest.mark.parametrize("mask_shape", [(7, 9), (4, 7, 9), (4, 1, 9)])
@pytest.mark.parametrize("threshold", [1.0, 3.0])
def test_contingency_valid_mask_equals_scores_on_nan_masked_fields(threshold, mask_shape):
    """``scores`` has no mask; a masked cell must count exactly like a NaN cell there."""
    pytest.importorskip("scores")
    f, o = _fields(nan_fraction=0.1)
    valid = np.random.default_rng(SEED + 1).random(mask_shape) < 0.6
    fm, om = f.copy(), o.copy()
    blank = ~np.broadcast_to(valid, f.shape)
    fm[blank] = np.nan
    om[blank] = np.nan
    _close(contingency(f, o, threshold, valid=valid), _scores_table(_scores_manager(fm, om, threshold)))


def test_contingency_hand_example_and_ties():
    forecast = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]], dtype=float)
    truth = np.array([[5, 0, 0], [0, 4, 0], [9, 0, 1]], dtype=float)
    # forecast events (>= 4): (1,1) (1,2) (2,0) (2,1) (2,2); truth events: (0,0) (1,1) (2,0)
    _close(contingency(forecast, truth, 4.0), [2, 3, 1, 3])
    # strictly above 4 the tied cell (1,1) is no event in either field: one hit fewer
    _close(contingency(forecast, truth, 4.5), [1, 3, 1, 4])
    valid = np.ones((3, 3), bool)
    valid[0, 0] = False  # drops the miss
    _close(contingency(forecast, truth, 4.0, valid=valid), [2, 3, 0, 3])
    nan_truth = truth.copy()
    nan_truth[2, 2] = np.nan  # drops a false alarm
    _close(contingency(forecast, nan_truth, 4.0), [2, 2, 1, 3])


def test_contingency_keeps_leading_dims_and_sums_over_fields():
    f, o = _fields(shape=(2, 3, 5, 6))
    table = contingency(f, o, 2.0)
    assert table.shape == (2, 3, 4)
    _close(table.sum(axis=(0, 1)), contingency(f.reshape(1, 6 * 5, 6), o.reshape(1, 30, 6), 2.0)[0])
    assert TABLE_FIELDS == ("hits", "false_alarms", "misses", "correct_negatives")


# --------------------------------------------------------------------------------- scores


def test_scores_hand_example():
    s = categorical_scores(np.array([2.0, 3.0, 1.0, 3.0]))  # the 3x3 example above
    assert set(s) == set(SCORE_NAMES)
    _close(s["pod"], 2 / 3)
    _close(s["far"], 3 / 5)  # the ratio F / (H + F); the rate F / (F + CN) would be 1/2
    _close(s["csi"], 1 / 3)
    _close(s["frequency_bias"], 5 / 3)
    hits_random = 3 * 5 / 9
    _close(s["ets"], (2 - hits_random) / (6 - hits_random))
    _close(s["ets"], 1 / 13)


@pytest.mark.parametrize("nan_fraction", [0.0, 0.2])
@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_scores_match_scores_package_per_field_and_summed(threshold, nan_fraction):
    pytest.importorskip("scores")
    f, o = _fields(nan_fraction=nan_fraction)
    table = contingency(f, o, threshold)
    ours, theirs = categorical_scores(table), _scores_scores(_scores_manager(f, o, threshold))
    ours_all = categorical_scores(table.sum(0))
    theirs_all = _scores_scores(_scores_manager(f, o, threshold, preserve=None))
    for name in SCORE_NAMES:
        _close(ours[name], theirs[name])
        _close(ours_all[name], theirs_all[name])


def test_far_is_the_ratio_that_scores_calls_false_alarm_ratio():
    pytest.importorskip("scores")
    f, o = _fields()
    manager = _scores_manager(f, o, 2.0)
    far = categorical_scores(contingency(f, o, 2.0))["far"]
    _close(far, manager.false_alarm_ratio().values)
    assert not np.allclose(far, manager.false_alarm_rate().values)


@pytest.mark.parametrize("case", ["no_events", "all_events"])
def test_scores_edge_cases_match_scores(case):
    pytest.importorskip("scores")
    shape = (2, 4, 5)
    f = np.zeros(shape) if case == "no_events" else np.full(shape, 3.0)
    o = f.copy()
    table = contingency(f, o, 1.0)
    s = categorical_scores(table)
    theirs = _scores_scores(_scores_manager(f, o, 1.0))
    for name in SCORE_NAMES:
        _close(s[name], theirs[name])
    if case == "no_events":
        _close(table, np.tile([0, 0, 0, 20], (2, 1)))
        assert all(np.isnan(s[k]).all() for k in SCORE_NAMES)
    else:
        _close(table, np.tile([20, 0, 0, 0], (2, 1)))
        _close(s["pod"], 1.0)
        _close(s["far"], 0.0)
        _close(s["csi"], 1.0)
        _close(s["frequency_bias"], 1.0)
        assert np.isnan(s["ets"]).all()  # (H - Hr) / (H - Hr) with Hr = H: 0 / 0


def test_scores_nan_only_where_a_denominator_is_zero():
    s = categorical_scores(np.array([[0, 4, 0, 5], [3, 0, 0, 5], [0, 0, 0, 0], [0, 0, 2, 1]], float))
    _close(s["pod"], [np.nan, 1.0, np.nan, 0.0])
    _close(s["far"], [1.0, 0.0, np.nan, np.nan])
    _close(s["csi"], [0.0, 1.0, np.nan, 0.0])
    _close(s["frequency_bias"], [np.nan, 1.0, np.nan, 0.0])
    _close(s["ets"], [-0.0, 1.0, np.nan, 0.0])  # perfect with correct negatives: ETS 1


# ---------------------------------------------------------------------- fractions skill score


def _scores_fss(f, o, threshold, scale, per_field):
    spatial = pytest.importorskip("scores.spatial")
    kwargs = {"preserve_dims": ["t"]} if per_field else {}
    return spatial.fss_2d(_da(f), _da(o), event_threshold=threshold, window_size=(scale, scale),
                          spatial_dims=("y", "x"), threshold_operator=np.greater_equal, **kwargs).values


def _fss_oracle(f, o, threshold, scale, valid):
    """float64 brute force: loop over cells, slice the window, fractions over scale**2."""
    height, width = f.shape
    usable = valid & ~np.isnan(f) & ~np.isnan(o)
    fe, oe = (f >= threshold) & usable, (o >= threshold) & usable
    mse = ref = 0.0
    for i in range(height):
        for j in range(width):
            r0, c0 = i - scale // 2, j - scale // 2
            inside = r0 >= 0 and c0 >= 0 and r0 + scale <= height and c0 + scale <= width
            if not (inside and usable[i, j]):
                continue
            pf = fe[r0:r0 + scale, c0:c0 + scale].sum() / scale**2
            po = oe[r0:r0 + scale, c0:c0 + scale].sum() / scale**2
            mse += (pf - po) ** 2
            ref += pf**2 + po**2
    return np.array([mse, ref])


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_fss_matches_scores_per_field_and_aggregated_over_time(threshold, scale):
    f, o = _fields()
    terms = fss_terms(f, o, threshold, scale)
    assert terms.shape == (4, 2) and terms.dtype == np.float64
    ours = fss_from_terms(terms)
    theirs = _scores_fss(f, o, threshold, scale, per_field=True)
    defined = terms[:, 1] > 0
    _close(ours[defined], theirs[defined])
    _close(fss_from_terms(terms.sum(0)), _scores_fss(f, o, threshold, scale, per_field=False))
    _close(terms, np.stack([_fss_oracle(a, b, threshold, scale, np.ones(a.shape, bool))
                            for a, b in zip(f, o, strict=True)]))


@pytest.mark.parametrize("scale", [1, 2, 3, 5])
def test_fss_terms_are_scores_components_rescaled(scale):
    """``scores`` keeps window *counts* and their *means* over windows; ours are fraction sums."""
    fss_numpy = pytest.importorskip("scores.fast.fss.fss_numpy")
    utils = pytest.importorskip("scores.utils")
    f, o = _fields(shape=(6, 8))
    ge = utils.NumpyThresholdOperator(np.greater_equal)
    backend = fss_numpy.FssNumpy(f, o, event_threshold=2.0, threshold_operator=ge,
                                 window_size=(scale, scale), zero_padding=False)
    power_fcst, power_obs, power_diff = backend.compute_fss_decomposed().item()
    windows = (6 - scale + 1) * (8 - scale + 1)
    _close(fss_terms(f, o, 2.0, scale) * scale**4 / windows, [power_diff, power_fcst + power_obs])


@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_fss_scale_one_is_one_minus_mse_over_ref_of_binary_fields(threshold):
    f, o = _fields()
    fe, oe = (f >= threshold).astype(float), (o >= threshold).astype(float)
    terms = fss_terms(f, o, threshold, 1)
    _close(terms[:, 0], ((fe - oe) ** 2).sum(axis=(1, 2)))
    _close(terms[:, 1], (fe**2 + oe**2).sum(axis=(1, 2)))
    _close(fss_from_terms(terms.sum(0)), 1 - ((fe - oe) ** 2).sum() / (fe**2 + oe**2).sum())


def test_fss_hand_example():
    """The 3 x 3 example of ``scores``' docs: 2 x 2 windows hold forecast counts 1 3 3 4 and
    observed counts 1 2 3 4, so mse = 1 / 16, ref = 65 / 16 and FSS = 64 / 65."""
    f = np.array([[0, 1, 2], [1, 2, 3], [2, 3, 4]], dtype=float)
    o = np.array([[0, 0, 1], [1, 2, 2], [2, 2, 3]], dtype=float)
    terms = fss_terms(f, o, 1.5, 2)
    _close(terms, [1 / 16, 65 / 16])
    _close(fss_from_terms(terms), 64 / 65)


def test_fss_threshold_ties_are_events():
    f = np.full((3, 3), 2.0)
    o = np.zeros((3, 3))
    _close(fss_terms(f, o, 2.0, 3), [1.0, 1.0])
    _close(fss_terms(f, o, 2.0 + 1e-9, 3), [0.0, 0.0])


def test_fss_no_events_is_nan_where_scores_says_zero():
    f = np.zeros((2, 5, 6))
    terms = fss_terms(f, f, 1.0, 3)
    _close(terms, np.zeros((2, 2)))
    assert np.isnan(fss_from_terms(terms)).all() and np.isnan(fss_from_terms(terms.sum(0)))
    pytest.importorskip("scores")
    _close(_scores_fss(f, f, 1.0, 3, per_field=False), 0.0)  # the documented difference


@pytest.mark.parametrize("scale", [1, 2, 5])
def test_fss_all_events_is_one_like_scores(scale):
    f = np.full((2, 5, 6), 4.0)
    terms = fss_terms(f, f, 1.0, scale)
    windows = (5 - scale + 1) * (6 - scale + 1)
    _close(terms, np.tile([0.0, 2.0 * windows], (2, 1)))
    _close(fss_from_terms(terms), 1.0)
    pytest.importorskip("scores")
    _close(_scores_fss(f, f, 1.0, scale, per_field=True), 1.0)


@pytest.mark.parametrize("scale", [8, 10])
def test_fss_scale_larger_than_the_grid_is_rejected_like_scores(scale):
    f, o = _fields()  # 7 x 9: scale 8 fits the width only
    with pytest.raises(ValueError, match="does not fit"):
        fss_terms(f, o, 2.0, scale)
    utils = pytest.importorskip("scores.utils")
    with pytest.raises(utils.DimensionError):
        _scores_fss(f, o, 2.0, scale, per_field=True)


@pytest.mark.parametrize("mask_kind", ["random", "disc", "all_valid", "none_valid"])
@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_fss_masked_matches_brute_force(scale, mask_kind):
    f, o = _fields(nan_fraction=0.05)
    rng = np.random.default_rng(SEED + 2)
    yy, xx = np.mgrid[0:7, 0:9]
    valid = {"random": rng.random((7, 9)) < 0.7, "disc": (yy - 3) ** 2 + (xx - 4) ** 2 <= 10,
             "all_valid": np.ones((7, 9), bool), "none_valid": np.zeros((7, 9), bool)}[mask_kind]
    terms = fss_terms(f, o, 2.0, scale, valid=valid)
    expected = np.stack([_fss_oracle(a, b, 2.0, scale, valid) for a, b in zip(f, o, strict=True)])
    _close(terms, expected)
    _close(fss_from_terms(terms.sum(0)), fss_from_terms(expected.sum(0)))
    if mask_kind == "none_valid":
        assert np.isnan(fss_from_terms(terms)).all()


def test_fss_even_scale_window_belongs_to_the_cell_at_offset_half():
    """scale 2: the window of cell (1, 1) covers rows 0-1, cols 0-1."""
    valid = np.zeros((4, 4), bool)
    valid[1, 1] = True
    f = np.zeros((4, 4))
    f[0, 0] = 5.0  # masked cell: a non-event, so nothing is forecast
    _close(fss_terms(f, np.zeros((4, 4)), 1.0, 2, valid=valid), [0.0, 0.0])
    valid[0, 0] = True  # now counted, inside the window of (1, 1) and (0, 0) has none
    _close(fss_terms(f, np.zeros((4, 4)), 1.0, 2, valid=valid), [1 / 16, 1 / 16])
    g = np.zeros((4, 4))
    g[2, 2] = 5.0  # outside the windows of (0, 0) and (1, 1)
    _close(fss_terms(g, np.zeros((4, 4)), 1.0, 2, valid=valid), [0.0, 0.0])


def test_fss_terms_keep_leading_dims_and_add_over_fields():
    f, o = _fields(shape=(2, 3, 6, 5))
    terms = fss_terms(f, o, 2.0, 3)
    assert terms.shape == (2, 3, 2)
    flat = fss_terms(f.reshape(6, 6, 5), o.reshape(6, 6, 5), 2.0, 3)
    _close(terms.reshape(6, 2), flat)
    _close(fss_from_terms(terms.sum(axis=(0, 1))), fss_from_terms(flat.sum(0)))


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("call", [
    lambda: contingency(np.zeros((3, 3)), np.zeros((3, 4)), 1.0),
    lambda: contingency(np.zeros(3), np.zeros(3), 1.0),
    lambda: contingency(np.zeros((3, 3)), np.zeros((3, 3)), float("nan")),
    lambda: contingency(np.zeros((3, 3)), np.zeros((3, 3)), 1.0, valid=np.ones((2, 3), bool)),
    lambda: contingency(np.zeros((3, 3)), np.zeros((3, 3)), 1.0, valid=np.ones((3, 3))),
    lambda: fss_terms(np.zeros((3, 3)), np.zeros((3, 3)), 1.0, 0),
    lambda: categorical_scores(np.zeros((2, 3))),
    lambda: fss_from_terms(np.zeros(3)),
])
def test_bad_input_is_rejected(call):
    with pytest.raises(ValueError):
        call()


def test_fractional_scale_is_rejected():
    with pytest.raises(TypeError):
        fss_terms(np.zeros((3, 3)), np.zeros((3, 3)), 1.0, 2.5)  # type: ignore[arg-type]
