"""Probabilistic metrics over imputation/forecast samples, restricted to the evaluation targets.

Axis convention (user-facing, time-major): ``samples`` (N, S, L, K), ``target`` (N, L, K),
``mask`` (N, L, K) boolean, True on the entries to evaluate (the evaluation targets). Values of
``target``/``samples`` outside the mask are ignored (they may be NaN), except by `crps_sum`, which
follows the reference CSDI definition (see there). Torch tensors are accepted and converted.

Definitions follow ARCHITECTURE §4 and the reference CSDI implementation (Tashiro et al. 2021,
``utils.py``: ``calc_quantile_CRPS``, ``calc_quantile_CRPS_sum`` and the median MAE/RMSE), which the
golden fixtures in ``tests/test_metrics.py`` pin to ~1e-9.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: CSDI's 19 quantile levels 0.05, 0.10, …, 0.95 (``np.arange(0.05, 1.0, 0.05)`` as the reference).
DEFAULT_QUANTILES: tuple[float, ...] = tuple(float(q) for q in np.arange(0.05, 1.0, 0.05))


class MetricInputError(ValueError):
    """Samples, target or mask that no metric can be computed on."""


def _to_numpy(x: Any) -> np.ndarray:
    """numpy view of a numpy array or torch tensor (detached, on the CPU)."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _check_mask(mask: Any, shape: tuple[int, ...]) -> BoolArray:
    m = _to_numpy(mask)
    if m.shape != shape:
        raise MetricInputError(f"mask has shape {m.shape}, expected {shape} (N, L, K)")
    if m.dtype != np.bool_:
        if not np.isin(m, (0, 1)).all():
            raise MetricInputError("mask must be boolean or hold only 0 and 1")
        m = m.astype(bool)
    if not m.any():
        raise MetricInputError("mask selects no entries: there are no evaluation targets")
    return m


def _check_target_mask(target: Any, mask: Any) -> tuple[FloatArray, BoolArray]:
    y = np.asarray(_to_numpy(target), dtype=np.float64)
    if y.ndim != 3:
        raise MetricInputError(f"target must be (N, L, K); got shape {y.shape}")
    m = _check_mask(mask, y.shape)
    n_bad = int((~np.isfinite(y[m])).sum())
    if n_bad:
        raise MetricInputError(f"target has {n_bad} non-finite value(s) at masked entries")
    return y, m


def _check_inputs(samples: Any, target: Any, mask: Any) -> tuple[FloatArray, FloatArray, BoolArray]:
    """Validated float64 samples (N, S, L, K), target (N, L, K) and boolean mask (N, L, K)."""
    x = np.asarray(_to_numpy(samples), dtype=np.float64)  # no copy when already float64
    y, m = _check_target_mask(target, mask)
    if x.ndim != 4 or x.shape[:1] + x.shape[2:] != y.shape:
        raise MetricInputError(
            f"samples must be (N, S, L, K) matching target {y.shape}; got shape {x.shape}"
        )
    if x.shape[1] == 0:
        raise MetricInputError("samples hold no sample (S = 0)")
    # (N, S, L, K) -> (N, L, K, S) view, boolean index -> (M, S)
    n_bad = int((~np.isfinite(np.moveaxis(x, 1, -1)[m])).sum())
    if n_bad:
        raise MetricInputError(f"samples have {n_bad} non-finite value(s) at masked entries")
    return x, y, m


def _gather(
    samples: FloatArray, target: FloatArray, mask: BoolArray
) -> tuple[FloatArray, FloatArray]:
    """Samples (M, S) and targets (M,) of the M masked entries."""
    return np.moveaxis(samples, 1, -1)[mask], target[mask]


def _quantile_loss(q_pred: FloatArray, y: FloatArray, q: float, weight: FloatArray) -> float:
    """CSDI's ``quantile_loss``: 2 Σ w |(q̂ − y)(1{y ≤ q̂} − q)| (twice the pinball loss)."""
    return float(2.0 * np.sum(np.abs((q_pred - y) * weight * ((y <= q_pred) - q))))


def _normalised_quantile_loss(
    x: FloatArray, y: FloatArray, weight: FloatArray, quantiles: tuple[float, ...]
) -> float:
    """Mean over levels of Σ w·2·pinball_q / Σ w|y|, samples x on axis 1 of (M, S, ...)."""
    denom = float(np.sum(np.abs(y * weight)))
    if denom == 0.0:
        return float("nan")  # undefined: every target value is zero
    q_pred = np.quantile(x, quantiles, axis=1)  # (Q, M, ...), linear as torch.quantile
    return float(
        np.mean(
            [
                _quantile_loss(qp, y, q, weight) / denom
                for q, qp in zip(quantiles, q_pred, strict=True)
            ]
        )
    )


def normalised_quantile_loss(
    samples: Any, target: Any, mask: Any, quantiles: tuple[float, ...] = DEFAULT_QUANTILES
) -> float:
    """CSDI's "CRPS": the normalised weighted quantile loss averaged over quantile levels.

    ``(1/|Q|) Σ_q [Σ_targets 2 ρ_q(y − q̂_q)] / Σ_targets |y|`` with ρ_q the pinball loss and q̂_q
    the sample quantile (linear interpolation, as ``torch.quantile``). This approximates the CRPS
    ``∫ 2 ρ_q dq`` by 19 levels and normalises it by Σ|y|; NaN when every target is 0.
    """
    x, y, m = _check_inputs(samples, target, mask)
    xs, ys = _gather(x, y, m)
    return _normalised_quantile_loss(xs, ys, np.ones_like(ys), quantiles)


#: Public name, as reported in tables (``crps``); the function computes what its name says above.
crps = normalised_quantile_loss


def _check_scaler(value: Any, n_features: int, name: str) -> FloatArray:
    """A scaler as float64 of shape () or (K,), broadcasting over the feature axis."""
    arr = np.asarray(_to_numpy(value), dtype=np.float64)
    if arr.shape not in ((), (n_features,)):
        raise MetricInputError(
            f"{name} must be a scalar or of shape ({n_features},); got {arr.shape}"
        )
    return arr


def _feature_sums(
    samples: FloatArray, target: FloatArray, mean: FloatArray, std: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Σ_K of un-scaled samples (N, S, L) and target (N, L), non-finite entries as 0.

    Window by window, so no copy of the full (N, S, L, K) array is made.
    """
    x_sum = np.stack(
        [np.where(np.isfinite(xn), xn * std + mean, 0.0).sum(axis=-1) for xn in samples]
    )
    y_sum = np.where(np.isfinite(target), target * std + mean, 0.0).sum(axis=-1)
    return x_sum, y_sum


def crps_sum(
    samples: Any,
    target: Any,
    mask: Any,
    quantiles: tuple[float, ...] = DEFAULT_QUANTILES,
    *,
    scaler_mean: Any = 0.0,
    scaler_std: Any = 1.0,
) -> float:
    """CSDI's ``calc_quantile_CRPS_sum``: `normalised_quantile_loss` of the sum over features.

    As the reference: un-scaled (``x · std + mean``) target and samples are summed over all K
    features (masked or not) per time step, and each step is weighted by the share of its
    features in the mask, ``mean_K(mask)``. In forecasting the mask covers every feature of the
    horizon, so this is exactly the quantile loss of the summed series there. Non-finite values
    outside the mask count as 0 (the reference's data hold no NaN).
    """
    x, y, m = _check_inputs(samples, target, mask)
    mean = _check_scaler(scaler_mean, y.shape[-1], "scaler_mean")
    std = _check_scaler(scaler_std, y.shape[-1], "scaler_std")
    return _crps_sum(x, y, m, mean, std, quantiles)


def _crps_sum(
    x: FloatArray,
    y: FloatArray,
    m: BoolArray,
    mean: FloatArray,
    std: FloatArray,
    quantiles: tuple[float, ...] = DEFAULT_QUANTILES,
) -> float:
    """`crps_sum` of already validated inputs."""
    x_sum, y_sum = _feature_sums(x, y, mean, std)  # (N, S, L), (N, L)
    return _normalised_quantile_loss(x_sum, y_sum, m.mean(axis=-1), quantiles)


def fair_crps_of_sorted(xs_sorted: FloatArray, y: FloatArray) -> FloatArray:
    """Fair sample CRPS per row: (1/S) Σ|x_i − y| − Σ_{i≠j}|x_i − x_j| / (2S(S − 1)).

    ``xs_sorted`` (M, S) sorted along axis 1, ``y`` (M,). With order statistics x_(k), k = 0…S−1,
    Σ_{i<j}|x_i − x_j| = Σ_k (2k − S + 1) x_(k), so the spread term is O(S) after an O(S log S)
    sort instead of O(S²). With S = 1 the spread term is taken as 0 (the CRPS of a point forecast).
    """
    skill = np.abs(xs_sorted - y[:, None]).mean(axis=1)
    if xs_sorted.shape[1] == 1:
        return skill
    return skill - half_mean_pair_distance(xs_sorted)


def half_mean_pair_distance(xs_sorted: FloatArray) -> FloatArray:
    """Σ_{i≠j}|x_i − x_j| / (2S(S − 1)) of each row of ``xs_sorted`` (..., S), sorted along its
    last axis (S ≥ 2): with order statistics, Σ_{i<j}|x_i − x_j| = Σ_k (2k − S + 1) x_(k)."""
    s = xs_sorted.shape[-1]
    coef = 2.0 * np.arange(s) - s + 1  # (S,)
    return (xs_sorted @ coef) / (s * (s - 1))


def crps_exact(samples: Any, target: Any, mask: Any) -> float:
    """Mean over targets of the fair sample CRPS ``E|X − y| − ½ E|X − X'|``.

    The CRPS in its energy form (Gneiting & Raftery 2007).
    The fair estimator (Ferro 2014) divides the pairwise term by S(S − 1), so it is unbiased for
    the CRPS of the distribution the samples are drawn from; in the units of the data, not
    normalised. See `fair_crps_of_sorted`.
    """
    x, y, m = _check_inputs(samples, target, mask)
    xs, ys = _gather(x, y, m)
    return float(fair_crps_of_sorted(np.sort(xs, axis=1), ys).mean())


def sample_median(samples: Any) -> FloatArray:
    """Median over the sample axis 1 (of (N, S, ...) or (M, S)), the LOWER middle value for even S.

    This matches ``torch.median`` used by the reference CSDI for its MAE/RMSE (the golden
    fixtures use S = 100 and S = 10, where the usual mid-point median would differ), so our
    figures are comparable with the published ones.
    """
    x = _to_numpy(samples).astype(np.float64)
    k = (x.shape[1] - 1) // 2
    return np.take(np.partition(x, k, axis=1), k, axis=1)


def mae(samples: Any, target: Any, mask: Any) -> float:
    """Mean absolute error of the sample median (`sample_median`) over targets."""
    x, y, m = _check_inputs(samples, target, mask)
    xs, ys = _gather(x, y, m)
    return float(np.abs(sample_median(xs) - ys).mean())


def rmse(samples: Any, target: Any, mask: Any) -> float:
    """Root mean squared error of the sample median (`sample_median`) over targets."""
    x, y, m = _check_inputs(samples, target, mask)
    xs, ys = _gather(x, y, m)
    return float(np.sqrt(((sample_median(xs) - ys) ** 2).mean()))


def coverage(samples: Any, target: Any, mask: Any, level: float) -> float:
    """Share of targets inside the central ``level`` interval [q_{(1−level)/2}, q_{(1+level)/2}].

    Sample quantiles by linear interpolation; bounds inclusive (so constant samples cover a target
    equal to them).
    """
    if not 0.0 < level < 1.0:
        raise MetricInputError(f"coverage level must be in (0, 1); got {level}")
    x, y, m = _check_inputs(samples, target, mask)
    xs, ys = _gather(x, y, m)
    lo, hi = np.quantile(xs, [(1.0 - level) / 2.0, (1.0 + level) / 2.0], axis=1)  # (M,) each
    return float(((ys >= lo) & (ys <= hi)).mean())


def coverage_50(samples: Any, target: Any, mask: Any) -> float:
    """`coverage` of the central 50 % interval."""
    return coverage(samples, target, mask, 0.5)


def coverage_90(samples: Any, target: Any, mask: Any) -> float:
    """`coverage` of the central 90 % interval."""
    return coverage(samples, target, mask, 0.9)


def energy_score(
    samples: Any,
    target: Any,
    mask: Any | None = None,
    *,
    scaler_mean: Any = 0.0,
    scaler_std: Any = 1.0,
) -> float:
    """Fair energy score (β = 1) per window, averaged over windows (Gneiting & Raftery 2007).

    ``ES = (1/S) Σ_i ‖X_i − y‖ − Σ_{i≠j} ‖X_i − X_j‖ / (2S(S − 1))`` with each window's (L, K)
    values, restricted to its masked entries, as one vector (Euclidean norm), after un-scaling
    ``x · std + mean``. Windows without masked entries are skipped; ``mask=None`` uses every
    entry. Needs S ≥ 2. The multivariate counterpart of `crps_exact`, for forecasts: it rewards
    getting the joint structure right.
    """
    y_arr = _to_numpy(target)
    if mask is None:
        mask = np.ones(y_arr.shape, dtype=bool)
    x, y, m = _check_inputs(samples, target, mask)
    mean = _check_scaler(scaler_mean, y.shape[-1], "scaler_mean")
    std = _check_scaler(scaler_std, y.shape[-1], "scaler_std")
    if x.shape[1] < 2:
        raise MetricInputError("energy_score needs at least 2 samples per window")
    return _energy_score(x, y, m, mean, std)


def _energy_score(
    x: FloatArray, y: FloatArray, m: BoolArray, mean: FloatArray, std: FloatArray
) -> float:
    """`energy_score` of already validated inputs (S ≥ 2)."""
    s = x.shape[1]
    scores = []
    for xi, yi, mi in zip(x, y, m, strict=True):  # one window: xi (S, L, K), yi and mi (L, K)
        if not mi.any():
            continue
        v = (xi * std + mean)[:, mi]  # (S, D) with D the window's masked entries
        skill = np.linalg.norm(v - (yi * std + mean)[mi], axis=1).mean()
        sq = (v * v).sum(axis=1)
        d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * v @ v.T, 0.0)  # (S, S) ‖X_i − X_j‖²
        np.fill_diagonal(d2, 0.0)
        scores.append(skill - np.sqrt(d2).sum() / (2.0 * s * (s - 1)))
    return float(np.mean(scores))


def _nrmse(point: FloatArray, y: FloatArray) -> float:
    """RMSE of `point` over mean |y|; NaN when every target is 0 (undefined, as the CRPS)."""
    scale = float(np.abs(y).mean())
    return float(np.sqrt(((point - y) ** 2).mean()) / scale) if scale > 0 else float("nan")


def evaluate(
    samples: Any,
    target: Any,
    mask: Any,
    *,
    scaler_mean: Any = 0.0,
    scaler_std: Any = 1.0,
) -> dict[str, float]:
    """All point and probabilistic metrics, after un-scaling ``x · std + mean`` (per feature).

    Returns crps (`normalised_quantile_loss`), crps_exact, crps_sum, mae, rmse, nrmse,
    coverage_50, coverage_90, energy_score (only for S ≥ 2) and n_targets. ``nrmse`` is GluonTS's
    NRMSE (as GP-copula and TimeGrad report it): the RMSE of the sample mean divided by the mean
    |target|. ``scaler_mean``/``scaler_std`` are scalars or per-feature arrays (K,). Memory stays
    O(targets · S) beyond the input.
    """
    x, y, m = _check_inputs(samples, target, mask)
    mean = _check_scaler(scaler_mean, y.shape[-1], "scaler_mean")
    std = _check_scaler(scaler_std, y.shape[-1], "scaler_std")
    xs, ys = _gather(x, y, m)  # (M, S), (M,): only the targets are un-scaled
    feature = np.nonzero(m)[2]  # (M,) feature index of each target, in the order of _gather
    mean_m = np.broadcast_to(mean, y.shape[-1:])[feature]  # (M,)
    std_m = np.broadcast_to(std, y.shape[-1:])[feature]  # (M,)
    xs = xs * std_m[:, None] + mean_m[:, None]
    ys = ys * std_m + mean_m
    xs_sorted = np.sort(xs, axis=1)
    s = xs.shape[1]
    med = xs_sorted[:, (s - 1) // 2]  # lower median, as torch.median (see sample_median)
    lo50, hi50, lo90, hi90 = np.quantile(xs_sorted, [0.25, 0.75, 0.05, 0.95], axis=1)
    mean_forecast = xs.mean(axis=1)
    result = {
        "crps": _normalised_quantile_loss(xs_sorted, ys, np.ones_like(ys), DEFAULT_QUANTILES),
        "crps_exact": float(fair_crps_of_sorted(xs_sorted, ys).mean()),
        "crps_sum": _crps_sum(x, y, m, mean, std),
        "mae": float(np.abs(med - ys).mean()),
        "rmse": float(np.sqrt(((med - ys) ** 2).mean())),
        "nrmse": _nrmse(mean_forecast, ys),
        "coverage_50": float(((ys >= lo50) & (ys <= hi50)).mean()),
        "coverage_90": float(((ys >= lo90) & (ys <= hi90)).mean()),
        "n_targets": float(ys.size),
    }
    if s >= 2:
        result["energy_score"] = _energy_score(x, y, m, mean, std)
    return result
