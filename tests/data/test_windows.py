"""Scaler statistics and the window cover / stitch bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest

from csdi.data.windows import Scaler, WindowSet, fit_scaler, stitch, window_starts


def test_fit_scaler_uses_observed_entries_and_population_std() -> None:
    values = np.array([[[1.0, 5.0, 0.0], [3.0, 5.0, 0.0]], [[100.0, 5.0, 0.0], [5.0, 5.0, 0.0]]])
    observed = np.array([[[1, 1, 0], [1, 1, 0]], [[0, 1, 0], [1, 1, 0]]], dtype=bool)
    s = fit_scaler(values, observed)
    np.testing.assert_allclose(s.mean, [3.0, 5.0, 0.0])
    np.testing.assert_allclose(s.std, [np.sqrt(8 / 3), 1.0, 1.0])  # ddof 0; std 0 → 1
    scaled = s.transform(values, observed)
    assert scaled.dtype == np.float32 and (scaled[~observed] == 0).all()
    np.testing.assert_allclose(s.inverse(scaled)[observed], values[observed], rtol=1e-6)
    back = Scaler.from_dict(s.to_dict())
    np.testing.assert_array_equal(back.mean, s.mean)
    np.testing.assert_array_equal(back.std, s.std)
    with pytest.raises(ValueError, match="positive"):
        Scaler(mean=np.zeros(2), std=np.array([1.0, 0.0]))


@pytest.mark.parametrize(
    ("n", "window", "stride"), [(10, 10, 3), (23, 8, 5), (20, 4, 4), (9, 3, 1)]
)
def test_window_starts_cover_every_row(n: int, window: int, stride: int) -> None:
    starts = window_starts(n, window, stride)
    covered = np.zeros(n, bool)
    for s in starts:
        covered[s : s + window] = True
    assert covered.all() and starts[0] == 0 and starts[-1] + window == n
    assert np.all(np.diff(starts) >= 1)
    with pytest.raises(ValueError, match="longer than the series"):
        window_starts(n, n + 1, 1)


def test_stitch_takes_each_row_from_one_window_never_averaging_samples() -> None:
    starts = window_starts(10, 6, 2)  # [0, 2, 4]
    n, s, length, k = len(starts), 5, 6, 2
    # window i carries the value i everywhere: the stitched value says which window served
    wv = np.broadcast_to(np.arange(n, dtype=float)[:, None, None, None], (n, s, length, k))
    out = stitch(wv, starts, 10)
    assert out.shape == (s, 10, k)
    # row r: the covering window with r farthest from its edges (ties → earlier window)
    assert out[0, :, 0].tolist() == [0, 0, 0, 0, 1, 1, 2, 2, 2, 2]
    assert (out == out[:1]).all()  # the same window for every sample and feature
    values = np.random.default_rng(0).normal(size=(n, length, k))
    assert stitch(values, starts, 10).shape == (1, 10, k)


def test_windowset_checks_shapes_and_targets() -> None:
    obs = np.ones((2, 3, 4), bool)
    cond = obs.copy()
    cond[0, 0, 0] = False
    w = WindowSet(
        np.zeros((2, 3, 4), np.float32), obs, cond, np.zeros((2, 3), np.float32), tuple("abcd")
    )
    assert w.targets.sum() == 1 and len(w.subset(np.array([1]))) == 1
    with pytest.raises(ValueError, match="feature names"):
        WindowSet(w.values, obs, None, w.timestamps, ("a",))
