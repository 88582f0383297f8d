"""Sensor scaling: the log transform's choice and round trip, robustness, and value bounds."""

from __future__ import annotations

import numpy as np

from csdi.data.scaling import Scaler, fit_bounds, fit_sensor_scaler, skewness


def _columns(n: int = 4000) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.stack(
        [
            rng.lognormal(5.0, 1.0, n),  # heavy-tailed, ≥ 0, in the hundreds: log
            rng.normal(20.0, 5.0, n),  # symmetric: as is
            np.full(n, 3.0),  # constant
            np.r_[rng.normal(0.0, 1.0, n - 2), 1e6, -1e6],  # two huge outliers
            rng.exponential(0.01, n),  # heavy-tailed in tiny units: log too
        ],
        axis=1,
    )  # (n, 5)


def test_skewness_closed_forms() -> None:
    """Exponential: 2; log-normal σ = 1: (e + 2)√(e − 1) ≈ 6.18 (large-sample)."""
    rng = np.random.default_rng(1)
    assert abs(skewness(rng.exponential(3.0, 400_000)) - 2.0) < 0.05
    assert abs(skewness(rng.normal(0, 1, 400_000))) < 0.02
    assert skewness(np.ones(10)) == 0.0


def test_sensor_scaler_picks_log_for_skewed_non_negative_columns_and_inverts() -> None:
    x = _columns()
    obs = np.ones_like(x, bool)
    s = fit_sensor_scaler(x, obs)
    assert s.log_scale is not None
    assert (s.log_scale > 0).tolist() == [True, False, False, False, True]
    z = s.transform(x, obs)
    # robust: the symmetric columns come out ≈ standard normal, outliers or not
    assert (
        abs(np.median(z[:, 3])) < 0.05
        and 0.9 < np.subtract(*np.quantile(z[:, 3], [0.75, 0.25])) / 1.349 < 1.1
    )
    assert np.all(z[:, 2] == 0.0)  # constant column: scale 1, no NaN
    assert np.isfinite(z).all()
    # the log column loses most of its skew (sample skew 3.7 → 0.6), whatever its units
    for k in (0, 4):
        assert abs(skewness(z[:, k].astype(float))) < 0.2 * skewness(x[:, k])
    back = s.inverse(z)
    np.testing.assert_allclose(back[:, [0, 1, 4]], x[:, [0, 1, 4]], rtol=2e-5, atol=1e-6)
    assert fit_sensor_scaler(x, obs, log_transform="none").log_scale.tolist() == [0.0] * 5


def test_scaler_round_trips_through_its_dict() -> None:
    s = fit_sensor_scaler(_columns(), np.ones((4000, 5), bool))
    t = Scaler.from_dict(s.to_dict())
    assert np.array_equal(t.mean, s.mean) and np.array_equal(t.log_scale, s.log_scale)
    plain = Scaler.from_dict({"mean": [0.0], "std": [1.0]})  # older model directories
    assert plain.log_scale is None


def test_bounds_span_the_training_range_and_keep_non_negative_columns_non_negative() -> None:
    x = _columns()[:, :2] - np.array([0.0, 20.0])  # column 1 now around 0, both signs
    obs = np.ones_like(x, bool)
    s = fit_sensor_scaler(x, obs)
    z = s.transform(x, obs)
    b = fit_bounds(z, obs, s, margin=0.1)
    span = z.max(0) - z.min(0)
    np.testing.assert_allclose(b.high, z.max(0) + 0.1 * span, rtol=1e-6)
    np.testing.assert_allclose(b.low[1], z.min(0)[1] - 0.1 * span[1], rtol=1e-6)
    # column 0 never went below 0: its lower bound is 0 in data units, not min − margin
    assert abs(s.inverse(np.array([[b.low[0], 0.0]]))[0, 0]) < 1e-5
    assert b.data_low[0] == 0.0 and b.data_low[1] < x[:, 1].min()
    np.testing.assert_allclose(s.inverse(b.high[None])[0], b.data_high)
    assert b.clip_data(np.array([[-1.0, 1e9]])).tolist() == [[0.0, b.data_high[1]]]
    # a positive column far from 0 keeps its margin in data units: 7..13 → 6.4..13.6
    far = np.linspace(7.0, 13.0, 50)[:, None]
    one = np.ones_like(far, bool)
    sf = fit_sensor_scaler(far, one, log_transform="none")
    bf = fit_bounds(sf.transform(far, one), one, sf, margin=0.1)
    np.testing.assert_allclose([bf.data_low[0], bf.data_high[0]], [6.4, 13.6], rtol=1e-6)
    # a feature with no observed value is unbounded
    obs[:, 1] = False
    b = fit_bounds(z, obs, s)
    assert b.low[1] == -np.inf and b.high[1] == np.inf


def test_bounds_cover_an_input_that_drifts_beyond_the_training_range() -> None:
    """`covering`: the training range 7..13 (6.4..13.6 with its margin) joined with the given
    values of a later input between their 0.5 % and 99.5 % quantiles, widened by 10 % of that
    span; one inside the training range, or with no given value, changes nothing; a
    non-negative column stays at 0 below unless the input itself goes negative."""
    train = np.linspace(7.0, 13.0, 50)[:, None]
    one = np.ones_like(train, bool)
    s = fit_sensor_scaler(train, one, log_transform="none")
    b = fit_bounds(s.transform(train, one), one, s, margin=0.1)

    def cover(later: np.ndarray, given: np.ndarray | None = None):  # type: ignore[no-untyped-def]
        given = np.ones_like(later, bool) if given is None else given
        return b.covering(s.transform(later, given), given, s)

    # 20..30 on an even grid: quantiles 0.5 % and 99.5 % at 20.05 and 29.95, 29.95 + 0.99
    later = np.linspace(20.0, 30.0, 1001)[:, None]
    wide = cover(later)
    np.testing.assert_allclose([wide.data_low[0], wide.data_high[0]], [6.4, 30.94], rtol=1e-6)
    np.testing.assert_allclose(s.inverse(np.stack([wide.low, wide.high]))[:, 0], [6.4, 30.94])
    glitch = later.copy()
    glitch[500] = 99999.0  # an error code in the input does not open the range
    assert cover(glitch).data_high[0] < 31.0
    inside = cover(np.linspace(8.0, 12.0, 11)[:, None])
    assert inside.to_dict() == b.to_dict()
    assert cover(np.full((5, 1), 25.0), np.zeros((5, 1), bool)).to_dict() == b.to_dict()
    # a non-negative column: 0 below stays 0 for non-negative input, follows a negative one
    pos = np.abs(_columns()[:, 1:2] - 20.0)  # ≥ 0, linearly scaled
    obs = np.ones_like(pos, bool)
    sp = fit_sensor_scaler(pos, obs, log_transform="none")
    bp = fit_bounds(sp.transform(pos, obs), obs, sp)
    assert bp.data_low[0] == 0.0
    later = np.linspace(0.0, 2.0 * pos.max(), 9)[:, None]
    obs_l = np.ones_like(later, bool)
    assert bp.covering(sp.transform(later, obs_l), obs_l, sp).data_low[0] == 0.0
    assert bp.covering(sp.transform(later - 1.0, obs_l), obs_l, sp).data_low[0] < -1.0
