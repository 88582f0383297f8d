"""The own-data benchmark's Gaussian sets: training rows are one stretch of the process."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

PATH = Path(__file__).resolve().parents[1] / "pipelines" / "benchmarks" / "own_data_sets.py"
spec = importlib.util.spec_from_file_location("own_data_sets", PATH)
assert spec is not None and spec.loader is not None
own_data_sets = importlib.util.module_from_spec(spec)
sys.modules["own_data_sets"] = own_data_sets
spec.loader.exec_module(own_data_sets)


def test_continuous_draw_has_the_processes_autocovariance_across_its_seams() -> None:
    """Two AR(1) features (φ = 0.8 and −0.5, unit innovations) over windows of T = 12 rows:
    a 60 000-row draw's lag-0..3 autocovariances, taken only over pairs that straddle the seams
    between the conditional blocks, match φ^h/(1 − φ²) within 4 standard errors."""
    phis, t = np.array([0.8, -0.5]), 12
    lags = np.abs(np.subtract.outer(np.arange(t), np.arange(t)))
    per_feature = [phi**lags / (1 - phi**2) for phi in phis]
    cov = np.zeros((t * 2, t * 2))
    for f, c in enumerate(per_feature):
        cov[f::2, f::2] = c  # time-major: row l, feature f at index 2·l + f
    x = own_data_sets._continuous_draw(cov, 2, 60_000, np.random.default_rng(0))
    assert x.shape == (60_000, 2)
    seams = np.arange(t, 60_000 - 4, t // 2)  # the first row of each conditional block
    for f, phi in enumerate(phis):
        var = 1 / (1 - phi**2)
        for h in range(4):
            pairs = x[seams - 1, f] * x[seams - 1 + h, f]  # from the block before into the next
            se = var * np.sqrt((1 + phi ** (2 * h)) / len(seams))
            assert abs(pairs.mean() - phi**h * var) < 4 * se, (f, h)


def test_gaussian_sets_keep_their_test_files_and_masks() -> None:
    """The training rows come from a stream of their own: the test part, the hidden mask and
    the training gaps of seed 0's gp_smooth are the earlier generator's (figures it printed),
    and the training rows have no jump (every step under 2 column stds; the joined stretches
    of the earlier files had steps of 3.7)."""
    a = own_data_sets.gp_smooth(np.random.default_rng(0))
    test = a.frame.iloc[a.n_train :].to_numpy()
    first = [-9.53747115e-02, 5.13408068e01, 9.11994734e02, -3.06805003e00, 1.99746857e04]
    np.testing.assert_allclose(test[0], first, rtol=1e-8)
    assert abs(np.nansum(test) - 10100178.011021748) < 1e-6
    assert int(a.hidden.sum()) == 732
    train = a.frame.iloc[: a.n_train].to_numpy()
    assert int(np.isnan(train).sum()) == 2051
    steps = np.abs(np.diff(train, axis=0)) / np.nanstd(train, axis=0)
    assert np.nanmax(steps) < 2.0
