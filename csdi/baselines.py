"""Simple imputation and forecasting baselines, run under the same protocol and metrics as CSDI.

Every baseline takes ``values`` (N, L, K) float, NaN wherever the method is not given the value
(only the ``cond`` entries are visible), and returns samples (N, S, L, K). Visible entries are
returned unchanged. Deterministic baselines (mean, locf, linear, knn, seasonal_naive) return S
identical copies: their sample CRPS is then the absolute error of the point forecast and their
quantile loss is the normalised MAE, which is the honest probabilistic score of a point method.
``iterative`` draws genuine samples (multiple imputation).

Where a value cannot be filled from its own series (a feature never visible in a window), the
per-feature mean of the visible values is used: over ``train_values`` when given (visible
entries of the training windows), else over ``values``.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.exceptions import ConvergenceWarning
from sklearn.experimental import enable_iterative_imputer  # noqa: F401  (registers the class)
from sklearn.impute import IterativeImputer, KNNImputer

FloatArray = NDArray[np.float64]


class BaselineError(ValueError):
    """Bad input or options for a baseline."""


def _feature_means(values: FloatArray, train_values: FloatArray | None) -> FloatArray:
    """Per-feature mean (K,) of the visible entries; NaN for a feature never visible."""
    source = values if train_values is None else train_values
    visible = ~np.isnan(source)
    counts = visible.sum(axis=(0, 1))  # (K,)
    sums = np.where(visible, source, 0.0).sum(axis=(0, 1))
    return np.divide(sums, counts, out=np.full(counts.shape, np.nan), where=counts > 0)


def _required_means(values: FloatArray, train_values: FloatArray | None) -> FloatArray:
    """`_feature_means`, raising if a feature has no visible value to take a mean of."""
    means = _feature_means(values, train_values)
    empty = np.flatnonzero(np.isnan(means))
    if empty.size:
        where = "train_values" if train_values is not None else "values"
        raise BaselineError(f"feature(s) {empty.tolist()} have no visible value in {where}")
    return means


def _fill_with_means(
    filled: FloatArray, values: FloatArray, train_values: FloatArray | None
) -> FloatArray:
    """Replace remaining NaN in ``filled`` (N, L, K) by the feature means (K,)."""
    missing = np.isnan(filled)
    if not missing.any():
        return filled
    return np.where(missing, _required_means(values, train_values), filled)


def _copies(filled: FloatArray, n_samples: int) -> FloatArray:
    """S identical samples (N, S, L, K) of a point imputation (N, L, K)."""
    return np.repeat(filled[:, None], n_samples, axis=1)


def _forward_fill(values: FloatArray) -> FloatArray:
    """Carry the last visible value forward along time (axis 1) of (N, L, K); leading NaN stay."""
    n_time = values.shape[1]
    idx = np.where(~np.isnan(values), np.arange(n_time)[None, :, None], 0)  # (N, L, K)
    idx = np.maximum.accumulate(idx, axis=1)
    return np.take_along_axis(values, idx, axis=1)


def mean_impute(
    values: FloatArray,
    *,
    n_samples: int,
    rng: np.random.Generator,
    train_values: FloatArray | None = None,
) -> FloatArray:
    """Per-feature mean of the visible values (training data if given). Deterministic."""
    return _copies(_fill_with_means(values.copy(), values, train_values), n_samples)


def locf(
    values: FloatArray,
    *,
    n_samples: int,
    rng: np.random.Generator,
    train_values: FloatArray | None = None,
) -> FloatArray:
    """Last observation carried forward per window and feature, then backward fill at the start,
    then the feature mean for a feature never visible in the window. Deterministic."""
    filled = _forward_fill(values)
    filled = _forward_fill(filled[:, ::-1])[:, ::-1]  # backward fill of the leading gap
    return _copies(_fill_with_means(filled, values, train_values), n_samples)


def linear_interpolation(
    values: FloatArray,
    *,
    n_samples: int,
    rng: np.random.Generator,
    train_values: FloatArray | None = None,
) -> FloatArray:
    """Linear interpolation along time per window and feature (``np.interp``: edges held at the
    first/last visible value); the feature mean where a series has no visible value.
    Deterministic."""
    n, n_time, k = values.shape
    t = np.arange(n_time, dtype=np.float64)
    series = values.transpose(0, 2, 1).reshape(n * k, n_time)  # (N·K, L)
    interpolated = np.full_like(series, np.nan)
    for i, row in enumerate(series):
        seen = ~np.isnan(row)
        if seen.any():
            interpolated[i] = np.interp(t, t[seen], row[seen])
    filled = interpolated.reshape(n, k, n_time).transpose(0, 2, 1)  # (N, L, K)
    return _copies(_fill_with_means(filled, values, train_values), n_samples)


def _rows(values: FloatArray, train_values: FloatArray | None) -> tuple[FloatArray, FloatArray]:
    """Time steps as rows: the fit rows (train ∪ input) and the input rows, each (·, K)."""
    k = values.shape[2]
    rows = values.reshape(-1, k)  # (N·L, K)
    if train_values is None:
        return rows, rows
    return np.concatenate([train_values.reshape(-1, k), rows]), rows


def knn(
    values: FloatArray,
    *,
    n_samples: int,
    rng: np.random.Generator,
    train_values: FloatArray | None = None,
    n_neighbors: int = 5,
) -> FloatArray:
    """scikit-learn ``KNNImputer`` over rows = time steps of all windows (features as columns),
    neighbours among the training and input rows. Deterministic."""
    fit_rows, rows = _rows(values, train_values)
    _required_means(values, train_values)  # every feature must have been seen
    imputer = KNNImputer(n_neighbors=n_neighbors).fit(fit_rows)
    filled = imputer.transform(rows).reshape(values.shape)  # (N, L, K)
    return _copies(np.where(np.isnan(values), filled, values), n_samples)


def iterative(
    values: FloatArray,
    *,
    n_samples: int,
    rng: np.random.Generator,
    train_values: FloatArray | None = None,
    max_iter: int = 10,
) -> FloatArray:
    """Multiple imputation by chained equations: scikit-learn ``IterativeImputer`` (Bayesian ridge)
    with ``sample_posterior=True``, over rows = time steps. Each of the S samples is a separate
    run with its own ``random_state`` drawn from ``rng``, so the samples are genuine posterior
    draws and their spread is scored by the CRPS. Costs S fits."""
    fit_rows, rows = _rows(values, train_values)
    _required_means(values, train_values)  # every feature must have been seen
    seeds = rng.integers(0, 2**32 - 1, size=n_samples)
    out = np.empty((values.shape[0], n_samples, *values.shape[1:]))  # (N, S, L, K)
    with warnings.catch_warnings():
        # With posterior sampling the stopping tolerance is never met by design.
        warnings.simplefilter("ignore", ConvergenceWarning)
        for s, seed in enumerate(seeds):
            imputer = IterativeImputer(
                sample_posterior=True,
                max_iter=max_iter,
                random_state=int(seed),
            ).fit(fit_rows)
            filled = imputer.transform(rows).reshape(values.shape)  # (N, L, K)
            out[:, s] = np.where(np.isnan(values), filled, values)
    return out


def seasonal_naive(
    values: FloatArray,
    *,
    n_samples: int,
    rng: np.random.Generator,
    train_values: FloatArray | None = None,
    season: int,
    horizon: int,
) -> FloatArray:
    """Forecast the last ``horizon`` steps by repeating the last ``season`` steps of the history:
    ``x̂[L − H + h] = x[L − H − season + (h mod season)]``. Gaps in the history are first filled
    by `locf`. Deterministic."""
    n_time = values.shape[1]
    if not 0 < horizon < n_time:
        raise BaselineError(f"horizon must be in [1, {n_time - 1}] for windows of {n_time} steps")
    history = n_time - horizon
    if not 0 < season <= history:
        raise BaselineError(f"season must be in [1, {history}] (the history length); got {season}")
    filled = locf(values[:, :history], n_samples=1, rng=rng, train_values=train_values)
    hist = filled[:, 0]  # (N, L − H, K)
    src = history - season + np.arange(horizon) % season  # (H,) time index into the history
    forecast = np.concatenate([hist, hist[:, src]], axis=1)  # (N, L, K)
    return _copies(np.where(np.isnan(values), forecast, values), n_samples)


Baseline = Callable[..., FloatArray]

BASELINES: dict[str, Baseline] = {
    "mean": mean_impute,
    "locf": locf,
    "linear": linear_interpolation,
    "knn": knn,
    "iterative": iterative,
    "seasonal_naive": seasonal_naive,
}


def run_baseline(
    name: str,
    values: Any,
    *,
    n_samples: int,
    rng: np.random.Generator,
    train_values: Any = None,
    **options: Any,
) -> FloatArray:
    """Run baseline ``name`` on ``values`` (N, L, K), NaN = not visible; samples (N, S, L, K).

    ``options`` are the baseline's own keywords (``n_neighbors`` for knn, ``max_iter`` for
    iterative, ``season`` and ``horizon`` for seasonal_naive).
    """
    if name not in BASELINES:
        raise BaselineError(f"unknown baseline {name!r}; valid: {', '.join(sorted(BASELINES))}")
    fn = BASELINES[name]
    params = {
        p: spec
        for p, spec in inspect.signature(fn).parameters.items()
        if p not in ("values", "n_samples", "rng", "train_values")
    }
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise BaselineError(
            f"baseline {name!r} got unknown option(s) {unknown}; accepts {sorted(params)}"
        )
    lacking = [p for p, spec in params.items() if spec.default is spec.empty and p not in options]
    if lacking:
        raise BaselineError(f"baseline {name!r} needs option(s) {lacking}")
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 3:
        raise BaselineError(f"values must be (N, L, K); got shape {x.shape}")
    train = None if train_values is None else np.asarray(train_values, dtype=np.float64)
    if train is not None and (train.ndim != 3 or train.shape[2] != x.shape[2]):
        raise BaselineError(
            f"train_values must be (N', L', {x.shape[2]}) like values; got shape {train.shape}"
        )
    if n_samples < 1:
        raise BaselineError(f"n_samples must be at least 1; got {n_samples}")
    if not (np.isnan(x) | np.isfinite(x)).all():
        raise BaselineError("values hold ±inf; mark missing entries with NaN")
    return fn(x, n_samples=n_samples, rng=rng, train_values=train, **options)
