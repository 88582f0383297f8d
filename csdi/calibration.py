"""Spread calibration: the samples' spread around their median, rescaled to suit held-out data.

A post-hoc recalibration of the model's predictive distributions on validation windows, as
Kuleshov, Fenner & Ermon (2018) recalibrate a regressor's quantiles on held-out data: sample s
of entry (l, k) becomes m + c(l, k)·(x_s − m), m the entry's sample median (`np.median`: the
midpoint of the middle two of an even number), so the median is unchanged and only the
intervals widen or narrow. The factor is
log c(l, k) = a_k + b·u_l: a level a_k per feature and, for a forecaster, one slope b shared by
the features over the lead time u_l ∈ [0, 1] of the horizon (a forecast's intervals may be
right an hour ahead and too narrow a day ahead). a and b are chosen on a grid to minimise the
fair CRPS (Ferro 2014) of the validation samples.

A median of S samples is itself uncertain, and deviations from it are smaller than from the
distribution's: exact samples of a Gaussian need a factor of 2.07 at S = 4, 1.15 at 16, 1.08 at
30 and 1.03 at 100 to score the distribution's own CRPS (`ensemble_factor`). So the level is
stored for the distribution (the fitted factor over that of the S samples it was fitted on)
and applied times the factor of the S samples it is applied to.
Arrays are time-major: samples (N, S, L, K), values and masks (N, L, K).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from csdi.metrics import half_mean_pair_distance

#: the factors tried: 1/4 … 4, log-uniform, neighbours 2.9 % apart (1 is on the grid)
FACTORS = np.exp(np.linspace(np.log(0.25), np.log(4.0), 97))
#: the lead-time slopes tried (log-factor change from the first step to the last of a horizon)
SLOPES = np.linspace(-1.0, 1.5, 51)
#: the fewest target values a feature's own level is fitted on; fewer: the features' pooled level
MIN_TARGETS = 200
#: the fewest samples a spread is fitted on or applied to (fewer are left as drawn: around the
#: median of two or three samples, the factor that scores best is no longer a spread's)
MIN_SAMPLES = 4


@dataclass(frozen=True)
class SpreadCalibration:
    """log c(l, k) = log `level`[k] + `slope`·u_l, in the model's normalised units, for the
    distribution (times `ensemble_factor` of the number of samples it is applied to): with a
    `horizon`, over the last `horizon` positions of a window (u_l = 0 … 1, the history's factor
    1); without one, the level at every position (an imputer's windows of any length)."""

    level: np.ndarray  # (K,) > 0
    slope: float = 0.0
    horizon: int | None = None

    def __post_init__(self) -> None:
        level = np.asarray(self.level, dtype=np.float64)
        if level.ndim != 1 or not np.all(np.isfinite(level)) or np.any(level <= 0):
            raise ValueError("spread levels must be one number > 0 per feature")
        if not np.isfinite(self.slope) or (self.horizon is not None and self.horizon < 1):
            raise ValueError("a spread slope must be finite and its horizon at least 1")
        object.__setattr__(self, "level", level)

    def factor(self, length: int, n_samples: int) -> np.ndarray:
        """(length, K) factor of each position of a window of `length` steps for
        `n_samples` (≥ `MIN_SAMPLES`) samples: the distribution's times `ensemble_factor`,
        and 1 over a forecaster's history (never fitted: left as drawn)."""
        h = self.horizon
        lead = np.zeros(length) if h is None else lead_times(length - h, h)
        factor = self.level * np.exp(self.slope * np.nan_to_num(lead))[:, None]
        return np.where(np.isnan(lead)[:, None], 1.0, factor * ensemble_factor(n_samples))

    def apply(self, samples: np.ndarray, given: np.ndarray) -> np.ndarray:
        """samples (N, S, L, K) with each entry not `given` (N, L, K) spread by its factor
        around its sample median (`np.median`, so the median is unchanged); given entries as
        they are; fewer than `MIN_SAMPLES` samples are returned as they are."""
        if samples.shape[1] < MIN_SAMPLES:
            return samples
        median = np.median(samples, axis=1, keepdims=True)  # (N, 1, L, K)
        factor = self.factor(samples.shape[2], samples.shape[1])
        spread = median + factor * (samples - median)
        return np.where(given[:, None], samples, spread).astype(samples.dtype)

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level.tolist(), "slope": self.slope, "horizon": self.horizon}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SpreadCalibration:
        return cls(np.asarray(d["level"], dtype=np.float64), float(d["slope"]), d["horizon"])


def crps_by_factor(
    samples: np.ndarray, values: np.ndarray, target: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Summed fair CRPS (G, L, K) of the `target` entries for each factor of `FACTORS` applied
    as `SpreadCalibration.apply` does, and the number of targets (L, K).

    With deviations d_s = x_s − m from the median, the fair CRPS of the scaled samples is
    mean_s |m + c·d_s − y| − c·Σ_{i<j}|d_i − d_j| / (S(S − 1)): the spread term is linear in c.
    """
    s = samples.shape[1]
    if s < 2:
        raise ValueError("spread calibration needs at least 2 samples per window")
    x = samples.astype(np.float64)
    median = np.median(x, axis=1, keepdims=True)  # (N, 1, L, K)
    dev = x - median
    spread = half_mean_pair_distance(np.moveaxis(np.sort(dev, axis=1), 1, -1))  # (N, L, K)
    y = np.where(target, values, 0.0)[:, None]  # (N, 1, L, K)
    weight = target.astype(np.float64)
    sums = np.empty((len(FACTORS), *values.shape[1:]))
    for g, c in enumerate(FACTORS):
        per_entry = np.abs(median + c * dev - y).mean(axis=1) - c * spread  # (N, L, K)
        sums[g] = (per_entry * weight).sum(axis=0)
    return sums, weight.sum(axis=0)


def fit_spread(
    samples: np.ndarray,
    values: np.ndarray,
    target: np.ndarray,
    horizon: int | None = None,
) -> SpreadCalibration | None:
    """The calibration (`SpreadCalibration`) that minimises the fair CRPS of `samples` on the
    `target` entries of `values`; None when there are fewer than `MIN_TARGETS` targets.

    `horizon`: a forecaster's, whose windows end with it (a level per feature and a slope over
    the lead time); None: an imputer's (a level per feature). A feature with fewer than
    `MIN_TARGETS` targets takes the level of all features pooled.
    """
    if samples.shape[1] < MIN_SAMPLES:
        raise ValueError(f"a spread is fitted on at least {MIN_SAMPLES} samples per window")
    sums, counts = crps_by_factor(samples, values, target)  # (G, L, K), (L, K)
    n_grid, length, n_features = sums.shape
    if counts.sum() < MIN_TARGETS:
        return None
    step = np.log(FACTORS[1] / FACTORS[0])
    lead = np.zeros(length) if horizon is None else lead_times(length - horizon, horizon)
    u = np.nan_to_num(lead)  # the history's targets: none (forecast mask), so any lead
    own = counts.sum(axis=0) >= MIN_TARGETS  # (K,) features with a level of their own
    best: tuple[float, float, np.ndarray] | None = None
    for b in np.zeros(1) if horizon is None else SLOPES:
        shift = np.rint(b * u / step).astype(int)  # (L,) grid steps from the level
        idx = np.clip(np.arange(n_grid)[:, None] + shift[None, :], 0, n_grid - 1)  # (G, L)
        total = sums[idx, np.arange(length)[None, :]].sum(axis=1)  # (G, K) CRPS by level
        level = np.where(own, total.argmin(axis=0), total.sum(axis=1).argmin())  # (K,)
        score = float(total[level, np.arange(n_features)].sum())
        if best is None or score < best[0]:
            best = (score, float(b), level)
    assert best is not None
    level = FACTORS[best[2]] / ensemble_factor(samples.shape[1])
    return SpreadCalibration(level, best[1], horizon)


@functools.lru_cache(maxsize=64)
def ensemble_factor(n_samples: int) -> float:
    """The factor `crps_by_factor` is smallest at for `n_samples` exact draws of a Gaussian
    scored against a draw of the same Gaussian, at least `MIN_SAMPLES`: found on fixed draws
    (about 400 000 values) as the vertex of a parabola in log c through the grid's best
    factor and its neighbours."""
    if n_samples < MIN_SAMPLES:
        raise ValueError(f"no spread factor for fewer than {MIN_SAMPLES} samples")
    rng = np.random.default_rng(0)
    n = max(2000, 400_000 // n_samples)
    values = rng.standard_normal((n, 1, 1))
    samples = rng.standard_normal((n, n_samples, 1, 1))
    crps = crps_by_factor(samples, values, np.ones(values.shape, bool))[0][:, 0, 0]
    i = int(np.clip(crps.argmin(), 2, len(FACTORS) - 3))
    a, b, _ = np.polyfit(np.log(FACTORS[i - 2 : i + 3]), crps[i - 2 : i + 3], 2)
    return float(np.exp(-b / (2 * a)))


def lead_times(context: int, horizon: int) -> np.ndarray:
    """(context + horizon,) lead time of each window position: NaN over the history, then
    0 … 1 over the horizon (0 when the horizon is one step)."""
    return np.concatenate([np.full(context, np.nan), np.arange(horizon) / max(horizon - 1, 1)])
