"""Spread calibration (`csdi.calibration`): its CRPS against the fair CRPS of scaled samples,
the factors it recovers from samples of a known wrong spread, and what it leaves unchanged."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from csdi import metrics as M
from csdi.calibration import (
    FACTORS,
    MIN_TARGETS,
    SpreadCalibration,
    crps_by_factor,
    ensemble_factor,
    fit_spread,
    lead_times,
)


def _scaled(samples: np.ndarray, c: float) -> np.ndarray:
    median = np.median(samples, axis=1, keepdims=True)
    return median + c * (samples - median)


def test_crps_by_factor_is_the_fair_crps_of_the_scaled_samples() -> None:
    rng = np.random.default_rng(0)
    samples = rng.standard_normal((6, 9, 5, 2))  # odd and even S both covered below
    values = rng.standard_normal((6, 5, 2))
    target = rng.random((6, 5, 2)) < 0.6
    for s in (9, 8):
        sums, counts = crps_by_factor(samples[:, :s], values, target)
        assert np.array_equal(counts, target.sum(axis=0))
        for g in (0, 30, int(np.argmin(np.abs(FACTORS - 1.0))), 96):
            expected = M.crps_exact(_scaled(samples[:, :s], FACTORS[g]), values, target)
            assert sums[g].sum() / counts.sum() == pytest.approx(expected, rel=1e-10)


def test_an_imputer_spread_too_narrow_by_half_is_doubled() -> None:
    """Truth N(0, 1), samples N(0, 0.5²): the CRPS is smallest at the true spread, factor 2;
    the second feature's samples are right (factor 1). Both are the distribution's: the
    16 samples' own factor (`ensemble_factor`) is taken out."""
    rng = np.random.default_rng(1)
    values = rng.standard_normal((400, 8, 2))
    samples = rng.standard_normal((400, 16, 8, 2)) * np.array([0.5, 1.0])
    spread = fit_spread(samples, values, np.ones(values.shape, bool))
    assert spread is not None and spread.horizon is None and spread.slope == 0.0
    np.testing.assert_allclose(spread.level, [2.0, 1.0], rtol=0.06)


def test_a_forecaster_spread_that_falls_behind_with_lead_time_gets_a_slope() -> None:
    """Truth's std grows as exp(0.8 u) over the horizon, the samples' stays 1: slope 0.8,
    level 1; the history (never a target) keeps factor 1."""
    rng = np.random.default_rng(2)
    context, horizon = 4, 12
    lead = lead_times(context, horizon)
    std = np.exp(0.8 * np.nan_to_num(lead))[None, :, None]  # (1, L, 1)
    values = rng.standard_normal((600, context + horizon, 2)) * std
    samples = rng.standard_normal((600, 16, context + horizon, 2))
    target = np.zeros(values.shape, bool)
    target[:, context:] = True
    spread = fit_spread(samples, values, target, horizon)
    assert spread is not None and spread.horizon == horizon
    assert spread.slope == pytest.approx(0.8, abs=0.1)
    np.testing.assert_allclose(spread.level, 1.0, rtol=0.08)
    factor = spread.factor(context + horizon, 100)
    assert np.all(factor[:context] == 1.0)
    np.testing.assert_allclose(
        factor[-1], spread.level * np.exp(spread.slope) * ensemble_factor(100)
    )


def test_a_feature_with_few_targets_takes_the_pooled_level_and_too_few_give_none() -> None:
    rng = np.random.default_rng(3)
    values = rng.standard_normal((100, 8, 2))
    samples = rng.standard_normal((100, 16, 8, 2)) * 0.5
    target = np.ones(values.shape, bool)
    target[:, :, 1] = False
    target[:3, 0, 1] = True  # 3 targets: under MIN_TARGETS
    spread = fit_spread(samples, values, target)
    assert spread is not None
    assert spread.level[1] == spread.level[0]  # both features together choose it
    few = np.zeros(values.shape, bool)
    few.reshape(-1)[: MIN_TARGETS - 1] = True
    assert fit_spread(samples, values, few) is None


def test_apply_keeps_the_median_and_the_given_entries() -> None:
    rng = np.random.default_rng(4)
    samples = rng.standard_normal((3, 7, 10, 2)).astype(np.float32)
    given = rng.random((3, 10, 2)) < 0.5
    spread = SpreadCalibration(np.array([2.0, 0.5]), slope=0.3, horizon=4)
    out = spread.apply(samples, given)
    assert out.dtype == samples.dtype
    np.testing.assert_allclose(np.median(out, axis=1), np.median(samples, axis=1), atol=1e-6)
    assert np.array_equal(
        out[np.broadcast_to(given[:, None], out.shape)],
        samples[np.broadcast_to(given[:, None], out.shape)],
    )
    median = np.median(samples, axis=1, keepdims=True)
    factor = spread.factor(10, 7)  # (L, K): history 1, horizon level · exp(slope · u) · g(7)
    expected = np.where(given[:, None], samples, median + factor * (samples - median))
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    assert np.all(factor[:6] == 1.0)
    np.testing.assert_allclose(
        factor[6:, 0], 2.0 * np.exp(0.3 * np.arange(4) / 3) * ensemble_factor(7)
    )


def test_stored_calibrations_round_trip_and_bad_ones_are_refused() -> None:
    spread = SpreadCalibration(np.array([1.2, 0.8]), slope=-0.4, horizon=6)
    again = SpreadCalibration.from_dict(spread.to_dict())
    assert np.array_equal(again.level, spread.level)
    assert (again.slope, again.horizon) == (spread.slope, spread.horizon)
    for bad in ([1.0, 0.0], [1.0, np.nan], [[1.0]]):
        with pytest.raises(ValueError, match="spread levels"):
            SpreadCalibration(np.array(bad))
    with pytest.raises(ValueError, match="slope"):
        SpreadCalibration(np.ones(2), slope=np.inf)


def test_the_ensemble_factor_falls_to_one_as_the_samples_grow() -> None:
    """Exact samples around their own median score best somewhat spread out, less so the more
    there are (a median of S samples is uncertain by about 1.25/√S of the spread)."""
    factors = [ensemble_factor(s) for s in (4, 8, 16, 30, 100)]
    assert factors[0] == pytest.approx(2.07, abs=0.1)
    assert factors[2] == pytest.approx(1.15, abs=0.04)
    assert all(a > b for a, b in itertools.pairwise(factors))
    assert 1.0 <= factors[-1] < 1.04
    with pytest.raises(ValueError, match="fewer than 4"):
        ensemble_factor(3)
    few = np.zeros((2, 3, 5, 1))
    assert SpreadCalibration(np.array([2.0])).apply(few, np.zeros((2, 5, 1), bool)) is few
