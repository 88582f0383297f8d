"""Per-feature standardisation over observed entries: x̃ = (x − μ_k) / σ_k."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scaler:
    """Per-feature mean and std, (K,) float64; applied on the last axis of (…, K) arrays."""

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        if self.mean.shape != self.std.shape or self.mean.ndim != 1:
            raise ValueError(
                f"mean and std must both be (K,); got {self.mean.shape} and {self.std.shape}"
            )
        if not np.all(self.std > 0):
            raise ValueError("every std must be positive")

    def transform(self, values: np.ndarray, observed: np.ndarray) -> np.ndarray:
        """(x − μ)/σ on observed entries, exactly 0 elsewhere; same shape (…, K) float32."""
        scaled = (np.asarray(values, np.float64) - self.mean) / self.std
        scaled[~np.asarray(observed, bool)] = 0.0  # also clears NaN at unobserved entries
        return scaled.astype(np.float32)

    def inverse(self, values: np.ndarray) -> np.ndarray:
        """x̃ σ + μ on every entry (samples have no missing entries); (…, K) float64."""
        return np.asarray(values, dtype=np.float64) * self.std + self.mean

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, list[float]]) -> Scaler:
        return cls(mean=np.asarray(d["mean"], np.float64), std=np.asarray(d["std"], np.float64))


def fit_scaler(values: np.ndarray, observed: np.ndarray) -> Scaler:
    """Mean and population std (ddof 0) of each feature over its observed entries of (…, K).

    A feature with zero spread gets std 1; one with no observed entry gets mean 0 and std 1.
    """
    k = values.shape[-1]
    vals = np.asarray(values, np.float64).reshape(-1, k)  # (rows, K)
    obs = np.asarray(observed, bool).reshape(-1, k)
    mean = np.zeros(k)
    std = np.ones(k)
    for j in range(k):
        col = vals[obs[:, j], j]
        if col.size:
            mean[j] = col.mean()
            s = col.std()
            std[j] = s if s > 0 else 1.0
    return Scaler(mean=mean, std=std)
