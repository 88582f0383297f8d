"""Per-feature scaling into model units, and the range of values a feature has shown.

Model units: x̃ = (T_k(x) − μ_k)/σ_k, with T_k the identity or, for a heavy-tailed non-negative
sensor column, T_k(x) = log1p(x / c_k) (c_k > 0 a low quantile of the column, so the transform does
not depend on its units). Benchmarks use the identity with mean/std as their protocols say;
own data gets `fit_sensor_scaler`, which picks the transform and a robust centre and scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Skewness above which a non-negative column is modelled in log1p(x / c) (a log-normal with
#: σ = 0.5 has skewness 1.75, an exponential 2; a Gaussian 0).
LOG_SKEWNESS = 1.5
#: c of log1p(x / c) is this quantile of the column's positive values: small enough that the
#: transform is ≈ log x over most of the range, large enough that values near 0 are not blown
#: apart.
LOG_OFFSET_QUANTILE = 0.1
#: Share of the training range added on either side of the value bounds.
BOUND_MARGIN = 0.1
#: the quantiles of an input's given values that `ValueBounds.covering` joins the range with
INPUT_QUANTILE = 0.005
#: Largest |value| in model units the network can take: it computes in 32-bit floats, where the
#: squares of values much beyond this overflow (a reading 10¹² scales from its column's centre
#: is a data error, not a measurement).
MODEL_RANGE = 1e12


@dataclass(frozen=True)
class Scaler:
    """Per-feature centre `mean` and scale `std`, (K,) float64, after the optional transform
    log1p(x / c) on features with `log_scale` c > 0 (0: identity); on the last axis of (…, K)."""

    mean: np.ndarray
    std: np.ndarray
    log_scale: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.mean.shape != self.std.shape or self.mean.ndim != 1:
            raise ValueError(
                f"mean and std must both be (K,); got {self.mean.shape} and {self.std.shape}"
            )
        if not np.all(self.std > 0):
            raise ValueError("every std must be positive")
        if self.log_scale is not None and (
            self.log_scale.shape != self.mean.shape or np.any(self.log_scale < 0)
        ):
            raise ValueError("log_scale must be (K,) and non-negative")

    def _forward(self, values: np.ndarray) -> np.ndarray:
        x = np.asarray(values, np.float64)
        if self.log_scale is None or not np.any(self.log_scale > 0):
            return x
        c = np.where(self.log_scale > 0, self.log_scale, 1.0)
        with np.errstate(invalid="ignore"):  # NaN at unobserved entries stays NaN
            logged = np.log1p(np.maximum(x, 0.0) / c)  # below 0 counts as 0 in a ≥ 0 column
        return np.where(self.log_scale > 0, logged, x)

    def transform(self, values: np.ndarray, observed: np.ndarray) -> np.ndarray:
        """(T(x) − μ)/σ on observed entries, exactly 0 elsewhere; same shape (…, K) float32."""
        scaled = (self._forward(values) - self.mean) / self.std
        scaled[~np.asarray(observed, bool)] = 0.0  # also clears NaN at unobserved entries
        return scaled.astype(np.float32)

    def first_beyond_range(
        self, values: np.ndarray, observed: np.ndarray
    ) -> tuple[int, ...] | None:
        """Index into (…, K) of the first observed value whose model-units value is not finite
        or beyond ±`MODEL_RANGE`; None when every observed value is usable."""
        with np.errstate(over="ignore", invalid="ignore"):
            scaled = (self._forward(values) - self.mean) / self.std
        bad = np.asarray(observed, bool) & ~(np.abs(scaled) <= MODEL_RANGE)
        if not bad.any():
            return None
        return tuple(int(i) for i in np.argwhere(bad)[0])

    def inverse(self, values: np.ndarray) -> np.ndarray:
        """T⁻¹(x̃ σ + μ) on every entry (samples have no missing entries); (…, K) float64."""
        x = np.asarray(values, dtype=np.float64) * self.std + self.mean
        if self.log_scale is None or not np.any(self.log_scale > 0):
            return x
        with np.errstate(over="ignore", invalid="ignore"):
            return np.where(self.log_scale > 0, self.log_scale * np.expm1(x), x)

    def to_dict(self) -> dict[str, list[float]]:
        d = {"mean": self.mean.tolist(), "std": self.std.tolist()}
        if self.log_scale is not None:
            d["log_scale"] = self.log_scale.tolist()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, list[float]]) -> Scaler:
        log_scale = d.get("log_scale")
        return cls(
            mean=np.asarray(d["mean"], np.float64),
            std=np.asarray(d["std"], np.float64),
            log_scale=None if log_scale is None else np.asarray(log_scale, np.float64),
        )


def _columns(values: np.ndarray, observed: np.ndarray) -> list[np.ndarray]:
    """The observed values of each feature of (…, K) arrays."""
    k = values.shape[-1]
    vals = np.asarray(values, np.float64).reshape(-1, k)  # (rows, K)
    obs = np.asarray(observed, bool).reshape(-1, k)
    return [vals[obs[:, j], j] for j in range(k)]


def fit_scaler(values: np.ndarray, observed: np.ndarray) -> Scaler:
    """Mean and population std (ddof 0) of each feature over its observed entries of (…, K).

    A feature with zero spread gets std 1; one with no observed entry gets mean 0 and std 1.
    """
    cols = _columns(values, observed)
    mean = np.array([c.mean() if c.size else 0.0 for c in cols])
    std = np.array([c.std() if c.size and c.std() > 0 else 1.0 for c in cols])
    return Scaler(mean=mean, std=std)


def skewness(x: np.ndarray) -> float:
    """Sample skewness E[(x − x̄)³]/s³ (0 for fewer than 3 values or no spread)."""
    if x.size < 3:
        return 0.0
    d = x - x.mean()
    s = np.sqrt(np.mean(d**2))
    return float(np.mean(d**3) / s**3) if s > 0 else 0.0


def _robust_centre_scale(x: np.ndarray) -> tuple[float, float]:
    """Median and IQR/1.349 (the std of a normal), else the std, else 1: a few huge outliers
    move neither, and a constant column gets scale 1."""
    if x.size == 0:
        return 0.0, 1.0
    q25, q50, q75 = np.quantile(x, [0.25, 0.5, 0.75])
    scale = (q75 - q25) / 1.349
    if not scale > 0:
        scale = float(x.std())
    return float(q50), float(scale) if scale > 0 else 1.0


def fit_sensor_scaler(
    values: np.ndarray, observed: np.ndarray, *, log_transform: str = "auto"
) -> Scaler:
    """Scaling for the user's own columns (…, K): robust centre and scale, and log1p(x / c) for
    every non-negative column whose skewness exceeds `LOG_SKEWNESS` ("auto"), for none ("none")
    or for every non-negative column ("all"); c is the `LOG_OFFSET_QUANTILE` quantile of
    the column's positive values."""
    if log_transform not in ("auto", "none", "all"):
        raise ValueError(f"log_transform must be auto, none or all; got {log_transform!r}")
    cols = _columns(values, observed)
    log_scale = np.zeros(len(cols))
    for j, c in enumerate(cols):
        positive = c[c > 0]
        if log_transform == "none" or c.size == 0 or c.min() < 0 or positive.size == 0:
            continue
        if log_transform == "all" or skewness(c) > LOG_SKEWNESS:
            log_scale[j] = float(np.quantile(positive, LOG_OFFSET_QUANTILE))
    logged = Scaler(np.zeros(len(cols)), np.ones(len(cols)), log_scale)._forward(values)
    centre_scale = [_robust_centre_scale(c) for c in _columns(logged, observed)]
    return Scaler(
        mean=np.array([m for m, _ in centre_scale]),
        std=np.array([s for _, s in centre_scale]),
        log_scale=log_scale,
    )


def beyond_range_message(column: str, value: float, where: str) -> str:
    """The one wording, at training and at imputation, for a value `first_beyond_range` finds."""
    return (
        f"column {column!r} has the value {value:g} {where}, too far from the column's training "
        "values for the model's 32-bit arithmetic; correct or blank it"
    )


@dataclass(frozen=True)
class ValueBounds:
    """Per-feature range (K,) that imputed values are kept inside: `low`, `high` in model units
    (what the samplers clip x̂₀ to) and the same range in data units (`data_low`, `data_high`;
    exactly 0 below for a column that was never negative)."""

    low: np.ndarray
    high: np.ndarray
    data_low: np.ndarray
    data_high: np.ndarray

    def to_dict(self) -> dict[str, list[float]]:
        return {k: getattr(self, k).tolist() for k in ("low", "high", "data_low", "data_high")}

    @classmethod
    def from_dict(cls, d: dict[str, list[float]]) -> ValueBounds:
        return cls(**{k: np.asarray(v, np.float64) for k, v in d.items()})

    def clip_data(self, values: np.ndarray) -> np.ndarray:
        """values (…, K) in data units clipped to [data_low, data_high]."""
        return np.clip(values, self.data_low, self.data_high)

    def covering(self, values: np.ndarray, observed: np.ndarray, scaler: Scaler) -> ValueBounds:
        """This range joined with `fit_bounds` of an input's given values (…, K), model units.

        What the input to impute shows is also something the series has done: a later period
        that trends beyond the training range (a random walk, a growing load) is imputed at its
        own level instead of being clipped to the training one, while a sample still cannot
        stray far from every value seen. The input's range is taken between its 0.5 % and
        99.5 % quantiles (`INPUT_QUANTILE`), so a few glitches in it (an error code of 99999)
        do not open the range. A feature the input gives no value keeps this range."""
        seen = fit_bounds(values, observed, scaler, quantile=INPUT_QUANTILE)
        lows, highs = np.isfinite(seen.low), np.isfinite(seen.high)
        return ValueBounds(
            low=np.where(lows, np.minimum(self.low, seen.low), self.low),
            high=np.where(highs, np.maximum(self.high, seen.high), self.high),
            data_low=np.where(lows, np.minimum(self.data_low, seen.data_low), self.data_low),
            data_high=np.where(highs, np.maximum(self.data_high, seen.data_high), self.data_high),
        )


def fit_bounds(
    values: np.ndarray,
    observed: np.ndarray,
    scaler: Scaler,
    margin: float = BOUND_MARGIN,
    quantile: float = 0.0,
) -> ValueBounds:
    """[min − m·span, max + m·span] of each feature's observed training values (…, K) in model
    units, span = max − min, m = `margin`; a feature that never went below 0 in data units is
    never sent below 0. A feature with no observed value is left unbounded. `quantile` q > 0:
    the q and 1 − q quantiles in place of the min and max."""
    k = values.shape[-1]
    zero = scaler.transform(np.zeros((1, k)), np.ones((1, k), bool))[0].astype(np.float64)
    low, high = np.full(k, -np.inf), np.full(k, np.inf)
    at_zero = np.zeros(k, bool)  # the bound was raised to 0 in data units
    for j, c in enumerate(_columns(values, observed)):
        if c.size == 0:
            continue
        lo, hi = (float(v) for v in np.quantile(c, [quantile, 1.0 - quantile]))
        span = max(hi - lo, 1e-6)
        low[j], high[j] = lo - margin * span, hi + margin * span
        if lo >= zero[j] - 1e-6 and low[j] <= zero[j]:  # non-negative, the margin reaches 0
            at_zero[j] = True
            low[j] = zero[j]
    with np.errstate(over="ignore", invalid="ignore"):
        data_low, data_high = scaler.inverse(np.stack([low, high]))  # monotone transforms
    data_low = np.where(at_zero, 0.0, np.where(np.isfinite(low), data_low, -np.inf))
    data_high = np.where(np.isfinite(high), data_high, np.inf)
    return ValueBounds(low=low, high=high, data_low=data_low, data_high=data_high)
