"""Synthetic Gaussian-process windows whose imputation posterior is known exactly.

x ∈ R^{K×L} ~ N(μ, Σ), Σ = (B Bᵀ + diag(d)) ⊗ k_L, flattened in C order of (K, L) so that
entry (k, l) sits at index k·L + l (np.kron(A, B)[k·L + l, k'·L + l'] = A[k, k'] B[l, l']).
k_L is an RBF or Matérn-3/2 kernel over the L steps. p(x_T | x_C) is then an exact Gaussian
(csdi.diffusion.gaussian.GaussianOracle), whose samples give the Bayes-optimal CRPS floor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from csdi.data.windows import WindowSet
from csdi.diffusion.conditioning import Conditioning
from csdi.diffusion.gaussian import GaussianOracle
from csdi.diffusion.schedule import NoiseSchedule, get_schedule


@dataclass(frozen=True)
class SyntheticData:
    """Windows (cond = held-out test pattern) and the exact model: mean (D,), cov (D, D)."""

    windows: WindowSet
    oracle: GaussianOracle
    mean: np.ndarray
    cov: np.ndarray


def temporal_kernel(
    length: int, lengthscale: float, kind: Literal["rbf", "matern32"] = "rbf"
) -> np.ndarray:
    """(L, L) stationary kernel over steps 0..L−1: RBF exp(−r²/2ℓ²) or Matérn-3/2."""
    r = np.abs(np.subtract.outer(np.arange(length), np.arange(length))) / lengthscale
    if kind == "rbf":
        return np.exp(-0.5 * r**2)
    if kind == "matern32":
        return (1.0 + np.sqrt(3.0) * r) * np.exp(-np.sqrt(3.0) * r)
    raise ValueError(f"unknown temporal kernel {kind!r}; choose 'rbf' or 'matern32'")


def make_synthetic(
    n_windows: int,
    n_features: int = 6,
    length: int = 24,
    *,
    missing_ratio: float = 0.5,
    rng: np.random.Generator,
    rank: int = 2,
    lengthscale: float = 3.0,
    kernel: Literal["rbf", "matern32"] = "rbf",
    feature_noise: float = 0.1,
    jitter: float = 1e-4,
    schedule: NoiseSchedule | None = None,
) -> SyntheticData:
    """Fully observed GP windows; cond hides int(ratio · K·L) random entries of each window.

    Cross-feature covariance B Bᵀ + feature_noise·I with B ~ N(0, 1/rank) of shape (K, rank);
    per-feature means ~ N(0, 1); `jitter` is added to the temporal kernel's diagonal so that Σ
    is well conditioned. The oracle's schedule defaults to `csdi_quad`.
    """
    if not 0.0 <= missing_ratio < 1.0:
        raise ValueError(f"missing_ratio must be in [0, 1); got {missing_ratio}")
    k = n_features
    d = k * length
    b = rng.normal(0.0, 1.0 / np.sqrt(rank), size=(k, rank))
    cov_k = b @ b.T + feature_noise * np.eye(k)  # (K, K)
    cov_l = temporal_kernel(length, lengthscale, kernel) + jitter * np.eye(length)  # (L, L)
    cov = np.kron(cov_k, cov_l)  # (D, D), index k·L + l
    mean = np.repeat(rng.normal(0.0, 1.0, size=k), length)  # (D,) constant over time
    chol = np.linalg.cholesky(cov)
    x = mean + rng.standard_normal((n_windows, d)) @ chol.T  # (N, D)
    values = x.reshape(n_windows, k, length).transpose(0, 2, 1)  # (N, K, L) → (N, L, K)

    n_hide = int(missing_ratio * d)
    hidden = np.argsort(rng.random((n_windows, d)), axis=1)[:, :n_hide]  # (N, n_hide)
    cond_flat = np.ones((n_windows, d), dtype=bool)
    np.put_along_axis(cond_flat, hidden, False, axis=1)
    cond = cond_flat.reshape(n_windows, k, length).transpose(0, 2, 1)  # (N, L, K)

    windows = WindowSet(
        values=np.ascontiguousarray(values, dtype=np.float32),
        observed=np.ones(values.shape, dtype=bool),
        cond=np.ascontiguousarray(cond),
        timestamps=np.broadcast_to(np.arange(length, dtype=np.float32), (n_windows, length)).copy(),
        feature_names=tuple(f"x{j}" for j in range(k)),
    )
    oracle = GaussianOracle(
        torch.from_numpy(mean),
        torch.from_numpy(cov),
        (k, length),
        schedule if schedule is not None else get_schedule("csdi_quad"),
    )
    return SyntheticData(windows=windows, oracle=oracle, mean=mean, cov=cov)


def oracle_samples(
    data: SyntheticData, n_samples: int, generator: torch.Generator, chunk: int = 256
) -> np.ndarray:
    """Exact samples of p(x | x_cond) for every window: (N, S, L, K) float64.

    cond entries equal the window's values; `chunk` windows at a time bound the (chunk, D, D)
    memory of the oracle's batched algebra.
    """
    w = data.windows
    if w.cond is None:
        raise ValueError("the windows have no cond pattern to condition on")
    x = torch.from_numpy(w.values.astype(np.float64)).transpose(1, 2)  # (N, K, L)
    mask = torch.from_numpy(w.cond).transpose(1, 2).to(torch.float64)  # (N, K, L)
    out = []
    for start in range(0, len(w), chunk):
        c = Conditioning(x=x[start : start + chunk], mask=mask[start : start + chunk])
        draws = data.oracle.sample_conditional(c, n_samples, generator)  # (n, S, K, L)
        out.append(draws.transpose(-1, -2).numpy())  # (n, S, L, K)
    return np.concatenate(out, axis=0)
